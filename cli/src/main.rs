use clap::Parser;
use jobhook_cli::{run, Cli};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let aws = jobhook::bootstrap::aws_config().await;
    if let Err(error) = run(cli, &aws, &mut std::io::stdout()).await {
        eprintln!("jobhook: {error}");
        std::process::exit(error.exit_code());
    }
}
