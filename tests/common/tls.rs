//! TLS peers for the RTMPS tests: a test CA made with the openssl CLI, and
//! nginx's `stream` module terminating TLS in front of a plain RTMP server,
//! all on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use super::nginx::spawn_nginx;
use super::tool;

/// Where Debian's libnginx-mod-stream puts the module.
pub const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

fn openssl(dir: &Path, args: &[&str]) {
    let out = tool("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and one server certificate it signed.
pub struct TestCa {
    /// The CA certificate (PEM), for `push-tls-ca`.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA `name` in `dir` and a server certificate for `san`
    /// (e.g. `DNS:localhost`), valid from now for a day.
    pub fn new(dir: &Path, name: &str, san: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let f = |s: &str| format!("{name}-{s}");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name} test CA"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                &f("ca.key"),
                "-out",
                &f("ca.pem"),
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=test server",
                "-keyout",
                &f("server.key"),
                "-out",
                &f("server.csr"),
            ],
        );
        std::fs::write(
            dir.join(f("ext.cnf")),
            format!(
                "subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &f("server.csr"),
                "-CA",
                &f("ca.pem"),
                "-CAkey",
                &f("ca.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                &f("ext.cnf"),
                "-out",
                &f("server.pem"),
            ],
        );
        Self {
            ca: dir.join(f("ca.pem")),
            cert: dir.join(f("server.pem")),
            key: dir.join(f("server.key")),
        }
    }
}

/// nginx terminating TLS on 127.0.0.1:`port` and passing the plain bytes on
/// to 127.0.0.1:`backend` (`stream { server { listen ... ssl; proxy_pass } }`).
pub struct TlsProxy {
    child: Option<Child>,
    pub dir: PathBuf,
}

impl TlsProxy {
    pub fn start(dir: &Path, port: u16, backend: u16, ca: &TestCa) -> Self {
        assert!(
            Path::new(NGINX_STREAM_MODULE).is_file(),
            "{NGINX_STREAM_MODULE} is missing; apt-get install libnginx-mod-stream"
        );
        std::fs::create_dir_all(dir).unwrap();
        let body = format!(
            "stream {{ server {{ listen 127.0.0.1:{port} ssl; \
             ssl_certificate {}; ssl_certificate_key {}; \
             proxy_pass 127.0.0.1:{backend}; }} }}\n",
            ca.cert.display(),
            ca.key.display()
        );
        let child = spawn_nginx(dir, NGINX_STREAM_MODULE, &body, port, "TLS nginx");
        Self {
            child: Some(child),
            dir: dir.to_path_buf(),
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
