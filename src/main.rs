//! `fhe-shazam`: the command line over the `fhe_shazam` library.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Err(err) = cli::run(args) {
        // Messages embed their source's text where it helps on its own; a cause already said
        // by the line above is not printed again.
        let mut said = err.to_string();
        eprintln!("error: {said}");
        for cause in err.chain().skip(1) {
            let text = cause.to_string();
            if !said.contains(&text) {
                eprintln!("  caused by: {text}");
            }
            said = text;
        }
        std::process::exit(1);
    }
}
