//! `boltfleet-loadgen`: simulates N agents against a running controller; the last line of its
//! output is one JSON object with what it measured. SIGINT or SIGTERM ends the run early
//! (the summary is still printed).

use std::process::ExitCode;

use boltfleet_common::{process, tls};
use boltfleet_tests::loadgen::{self, Args};
use clap::Parser;

fn main() -> ExitCode {
    tls::install_crypto_provider();
    let args = Args::parse();
    if let Err(err) = args.validate() {
        return process::exit_usage("boltfleet-loadgen", &err);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return process::exit_failure("boltfleet-loadgen", &err),
    };
    match runtime.block_on(loadgen::run(args, process::shutdown_signal())) {
        Ok(summary) => {
            println!("{}", serde_json::to_string(&summary).expect("plain data"));
            ExitCode::SUCCESS
        }
        Err(err) => process::exit_failure("boltfleet-loadgen", &format!("{err:#}")),
    }
}
