//! A redis-server of the tests' own (Debian's package), on a free loopback port.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A redis-server of its own, on `port`, keeping nothing on disk.
pub struct RedisServer {
    child: Child,
    pub port: u16,
    tls: bool,
}

impl RedisServer {
    pub fn start(port: u16) -> RedisServer {
        Self::spawn(port, &["--port", &port.to_string()], false)
    }

    /// A server that speaks TLS only, with a certificate for 127.0.0.1 signed by a CA of
    /// its own, made with openssl in `dir`: `dir/ca.pem` is the CA to trust.
    pub fn start_tls(port: u16, dir: &std::path::Path) -> RedisServer {
        let openssl = |args: &[&str]| {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .stderr(Stdio::null())
                .status()
                .expect("openssl (Debian package openssl)")
                .success();
            assert!(ok, "openssl {args:?}");
        };
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=quantdb test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
        Self::spawn(
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &file("server.pem"),
                "--tls-key-file",
                &file("server.key"),
                "--tls-ca-cert-file",
                &file("ca.pem"),
                "--tls-auth-clients",
                "no",
            ],
            true,
        )
    }

    fn spawn(port: u16, listen: &[&str], tls: bool) -> RedisServer {
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; scripts/install-toolchain.sh installs it)");
        let server = RedisServer { child, port, tls };
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {port}");
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli ARGS...` on this server: its answer, trimmed (empty for nil).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli (Debian package redis-tools, with redis-server)");
        assert!(out.status.success(), "redis-cli {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
