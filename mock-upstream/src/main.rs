//! Runs the mock upstream quote server (Sina, Tencent and Eastmoney formats over a synthetic
//! market) until Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run -p mock-upstream -- --port 18080 --cors --down sina
//! cargo run -p mock-upstream -- --now 2026-11-30T10:00:00+08:00
//! ```

fn main() -> std::process::ExitCode {
    native::main()
}

mod native {
    use std::net::{IpAddr, SocketAddr};
    use std::process::ExitCode;
    use std::time::Duration;

    use chrono::{DateTime, FixedOffset};
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(about = "Mock Sina/Tencent/Eastmoney quote server over a synthetic A-share market")]
    struct Args {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 18080)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        bind: IpAddr,
        /// Delay before answering each upstream request, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Fraction of upstream requests answered with 500 (0.0 to 1.0).
        #[arg(long, default_value_t = 0.0)]
        failure_rate: f64,
        /// Send CORS headers and answer preflights.
        #[arg(long)]
        cors: bool,
        /// Let Sina answer without a Referer header.
        #[arg(long)]
        no_referer_check: bool,
        /// A provider that always answers 500 (repeatable).
        #[arg(long, value_parser = ["sina", "tencent", "eastmoney"])]
        down: Vec<String>,
        /// Stop the clock at this instant (RFC 3339, e.g. 2026-11-30T10:00:00+08:00, or a
        /// date and time taken as China time); its date is the history's today.
        #[arg(long, value_parser = parse_now)]
        now: Option<DateTime<FixedOffset>>,
    }

    fn parse_now(s: &str) -> Result<DateTime<FixedOffset>, String> {
        mock_upstream::parse_time(s)
            .ok_or_else(|| "expected RFC 3339 (2026-11-30T10:00:00+08:00), years 1991-2099".into())
    }

    #[tokio::main]
    pub async fn main() -> ExitCode {
        let args = Args::parse();
        let config = mock_upstream::MockConfig {
            latency: Duration::from_millis(args.latency_ms),
            failure_rate: args.failure_rate,
            cors: args.cors,
            referer_check: !args.no_referer_check,
            down: args.down,
            now: args.now,
        };
        let addr = SocketAddr::new(args.bind, args.port);
        match mock_upstream::serve_forever(addr, config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("mock upstream: {err}");
                ExitCode::FAILURE
            }
        }
    }
}
