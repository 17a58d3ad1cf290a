//! Runs the mock upstream quote server (Sina, Tencent and Eastmoney formats over a synthetic
//! market) until Ctrl-C or SIGTERM.
//!
//! ```text
//! cargo run -p mock-upstream -- --port 18080 --cors --down sina
//! ```

fn main() -> std::process::ExitCode {
    native::main()
}

mod native {
    use std::net::{IpAddr, SocketAddr};
    use std::process::ExitCode;
    use std::time::Duration;

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
