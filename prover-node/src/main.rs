//! `prover-node`: parses the command line and dispatches to the library ([`prover_node::cli`]).

use clap::Parser;
use prover_node::cli::{self, Cli, Command, EncryptionKeyCommand, SrsCommand};

fn main() {
    cli::init_logging();
    let result = match Cli::parse().command {
        Command::Setup(a) => cli::setup(a),
        Command::Prove(a) => cli::prove(a),
        Command::Verify(a) => cli::verify(a),
        Command::Bench(a) => cli::bench(a),
        Command::Run(a) => cli::run_node(a),
        Command::Demo(a) => cli::demo(a),
        Command::Srs(SrsCommand::Import(a)) => cli::srs_import(a),
        Command::Srs(SrsCommand::Show { file }) => cli::srs_show(file),
        Command::DeployCoordinator(a) => cli::deploy_coordinator(a),
        Command::DeployVerifier(a) => cli::deploy_verifier(a),
        Command::ListModel(a) => cli::list_model(a),
        Command::SealInput(a) => cli::seal_input(a),
        Command::EncryptionKey(EncryptionKeyCommand::New(a)) => cli::encryption_key_new(a),
        Command::EncryptionKey(EncryptionKeyCommand::Register(a)) => cli::encryption_key_register(a),
        Command::EncryptionKey(EncryptionKeyCommand::Show(a)) => cli::encryption_key_show(a),
    };
    if let Err(err) = result {
        eprintln!("Error: {err:?}");
        std::process::exit(1);
    }
}
