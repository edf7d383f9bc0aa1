//! The `proxytail` binary: parse the command line, start tracing, run, map the result to an exit code.
use clap::Parser;
use proxytail::config::{Cli, Command, Config};
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: under systemd stderr is the journal, where escapes are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PROXYTAIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run() {
        Ok(code) => code,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            eprintln!("proxytail: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    // clap prints help, version and usage errors itself, with the right exit code.
    let mut cli = Cli::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
    proxytail::config::default_config_for_operator(&mut cli);
    // check-config reports every problem itself, including those that stop `Config` from loading.
    if let Some(Command::CheckConfig) = cli.command {
        let report = proxytail::check::check(&cli.settings);
        report.print(&mut std::io::stdout())?;
        return Ok(if report.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let command = cli.command;
    let config = Config::from_settings(cli.settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match command {
        None => runtime.block_on(async {
            let signals = proxytail::shutdown::on_signals()?;
            proxytail::app::run_bound(config, signals).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Some(Command::Demo) => runtime.block_on(async {
            let signals = proxytail::shutdown::on_signals()?;
            proxytail::demo::run(config, signals).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Some(Command::HashPassword) => {
            let hash = proxytail::auth::hash_password_from_stdin()?;
            println!("{hash}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::User { action }) => {
            proxytail::users_cmd::run(&action, config.users.as_deref(), &mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::CheckConfig) => unreachable!("handled above"),
    }
}
