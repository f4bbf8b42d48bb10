//! "Did you mean" for unknown config-file keys.

/// The closest of `candidates` to an unknown `key`, if it is close enough
/// to be a typo (at most a third of its letters differ).
pub fn did_you_mean<'a>(
    key: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    /// Edit distance with transpositions (optimal string alignment).
    fn distance(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in d[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1)
                    .min(d[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[i - 2][j - 2] + 1);
                }
                d[i][j] = v;
            }
        }
        d[a.len()][b.len()]
    }
    candidates
        .into_iter()
        .map(|c| (distance(key, c), c))
        .filter(|&(d, c)| d <= (key.len().max(c.len()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Adds "did you mean" to serde's unknown-field message, which names the
/// field and lists the expected ones in backticks.
pub(super) fn suggest_key(msg: &str) -> Option<String> {
    let rest = msg.split("unknown field `").nth(1)?;
    let key = rest.split('`').next()?;
    let expected = rest.split("expected one of ").nth(1)?;
    let names = expected.split('`').skip(1).step_by(2);
    did_you_mean(key, names).map(|m| format!("unknown key `{key}`: did you mean `{m}`?"))
}
