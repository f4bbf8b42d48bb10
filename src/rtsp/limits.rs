//! Limits that keep hostile or broken clients from exhausting the server:
//! connections in all and per address, and requests per second per
//! connection. Pure bookkeeping; the server applies the answers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The configured limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitSettings {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    /// Sustained requests per second per connection (bursts of twice that).
    pub max_requests_per_second: u32,
    /// A connection must finish a request this soon after connecting or
    /// after starting to send one (stops idle and trickling connections).
    pub handshake_timeout: Duration,
    /// A connection without a session is closed after this long idle.
    pub idle_timeout: Duration,
}

impl Default for LimitSettings {
    /// The config keys' defaults (defined once, in the key table).
    fn default() -> Self {
        crate::app::limit_settings(&crate::config::Config::default())
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total(usize),
    PerAddress(IpAddr, usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Total(n) => write!(f, "the server has its maximum of {n} connections"),
            Self::PerAddress(ip, n) => write!(f, "{ip} already has its maximum of {n} connections"),
        }
    }
}

/// Open connections, in all and per client address.
#[derive(Debug, Default)]
pub(crate) struct ConnTable {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl ConnTable {
    /// Counts a new connection from `ip`, or refuses it.
    pub fn admit(&mut self, ip: IpAddr, limits: &LimitSettings) -> Result<(), Refusal> {
        if self.total >= limits.max_connections {
            return Err(Refusal::Total(limits.max_connections));
        }
        let n = self.per_ip.entry(ip).or_insert(0);
        if *n >= limits.max_connections_per_ip {
            return Err(Refusal::PerAddress(ip, limits.max_connections_per_ip));
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// Forgets a connection admitted earlier.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
            self.total -= 1;
        }
    }

    #[cfg(test)]
    fn total(&self) -> usize {
        self.total
    }

    /// Distinct client addresses tracked (for tests: no leak).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.per_ip.len()
    }
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, now: Instant) -> Self {
        let burst = 2.0 * f64::from(rate.max(1));
        Self {
            rate: f64::from(rate.max(1)),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token if one is available.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A connection's place in a server's [`ConnTable`] and in its count of
/// open connections, given back when dropped. `T` is the server's shared
/// state, which holds both (the RTSP server and the HTTP face each have one).
pub(crate) struct ConnSlot<T: Send + Sync + 'static> {
    owner: Arc<T>,
    ip: IpAddr,
    table: fn(&T) -> &Mutex<ConnTable>,
    count: fn(&T) -> &AtomicUsize,
}

impl<T: Send + Sync + 'static> ConnSlot<T> {
    /// For a connection from `ip` that `table` admitted; counts it open.
    pub fn new(
        owner: Arc<T>,
        ip: IpAddr,
        table: fn(&T) -> &Mutex<ConnTable>,
        count: fn(&T) -> &AtomicUsize,
    ) -> Self {
        count(&owner).fetch_add(1, Ordering::Relaxed);
        Self {
            owner,
            ip,
            table,
            count,
        }
    }

    pub fn owner(&self) -> &Arc<T> {
        &self.owner
    }
}

impl<T: Send + Sync + 'static> Drop for ConnSlot<T> {
    fn drop(&mut self) {
        (self.table)(&self.owner)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .release(self.ip);
        (self.count)(&self.owner).fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_table_limits_and_releases() {
        let limits = LimitSettings {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..LimitSettings::default()
        };
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let mut t = ConnTable::default();
        t.admit(a, &limits).unwrap();
        t.admit(a, &limits).unwrap();
        assert_eq!(t.admit(a, &limits), Err(Refusal::PerAddress(a, 2)));
        t.admit(b, &limits).unwrap();
        assert_eq!(t.admit(b, &limits), Err(Refusal::Total(3)));
        t.release(a);
        t.admit(b, &limits).unwrap();
        for ip in [a, b, b] {
            t.release(ip);
        }
        assert_eq!((t.total(), t.addresses()), (0, 0));
        t.release(a); // unknown: ignored
        assert_eq!(t.total(), 0);
        assert!(Refusal::PerAddress(a, 2).to_string().contains("127.0.0.2"));
    }

    #[test]
    fn bucket_allows_bursts_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, t0);
        assert_eq!(
            (0..25).filter(|_| b.take(t0)).count(),
            20,
            "burst of 2x rate"
        );
        assert!(!b.take(t0));
        assert!(
            b.take(t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.take(t0 + Duration::from_millis(150)));
        assert_eq!(
            (0..100)
                .filter(|_| b.take(t0 + Duration::from_secs(60)))
                .count(),
            20,
            "never more than the burst"
        );
    }
}
