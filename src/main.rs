//! The `ocigo` command line: parses arguments and calls the library. Every
//! flag is documented here, in one place; `ocigo help <command>` shows it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ocigo::artifact::SplitLimits;
use ocigo::commands::{self, Global, Outcome};

/// Go module closures as OCI artifacts, for networks with no internet.
///
/// Exit codes: 0 success; 1 unexpected failure; 2 usage error; 3 integrity
/// failure (digest, h1 hash, go.sum, zip rules, signature); 4 registry or
/// network failure; 5 conflict with existing content (nothing overwritten);
/// 6 something needed was not found.
#[derive(Parser)]
#[command(name = "ocigo", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GlobalArgs {
    /// Local content store (an OCI layout) shared by every pack and pull on this host.
    /// Default: $OCIGO_STORE, else <user cache dir>/ocigo/store.
    #[arg(long, global = true, env = "OCIGO_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Talk plain HTTP to registries that are not on localhost/127.0.0.1 (always on for those).
    #[arg(long, global = true)]
    plain_http: bool,
    /// Print a machine-readable JSON report on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars (they are also off when stderr is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve a Go project's module closure and pack it as an OCI artifact.
    Pack {
        /// The Go project (a directory with go.mod or go.work).
        #[arg(default_value = ".")]
        project_dir: PathBuf,
        /// Where to put the artifact: oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG].
        #[arg(short, long, value_name = "DEST")]
        output: String,
        /// Resolve for this os/arch too (repeatable). Default: the host's.
        #[arg(long = "platform", value_name = "OS/ARCH")]
        platforms: Vec<String>,
        /// Pack from an existing module cache with no network at all.
        #[arg(long, value_name = "GOMODCACHE")]
        from_cache: Option<PathBuf>,
        /// Record this creation time (RFC 3339) in the config. Off by default so packing is reproducible.
        #[arg(long, value_name = "TIME")]
        created: Option<String>,
        /// Split into several manifests when one would pass this many bytes (tests use small values).
        #[arg(long, hide = true, default_value_t = ocigo::artifact::DEFAULT_MAX_MANIFEST_BYTES)]
        max_manifest_bytes: usize,
    },
    /// Copy an artifact between an OCI layout and a registry (either direction), sending only missing blobs.
    Push {
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG].
        dest: String,
    },
    /// Fetch a module bundle, verify it, and write it into GOMODCACHE (no go command needed).
    Pull {
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
        /// Module cache to write. Default: $GOMODCACHE, else $GOPATH/pkg/mod, else ~/go/pkg/mod.
        #[arg(long, value_name = "DIR")]
        gomodcache: Option<PathBuf>,
    },
    /// Show a bundle's modules, versions and sizes.
    Inspect {
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
    },
    /// List or prune the local content store.
    #[command(subcommand)]
    Store(StoreCommand),
}

#[derive(Subcommand)]
enum StoreCommand {
    /// List what the store holds.
    List,
    /// Forget references, then delete blobs nothing references.
    Prune {
        /// References to forget first (as `store list` shows them).
        references: Vec<String>,
        /// Forget every reference: empties the store.
        #[arg(long)]
        all: bool,
    },
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let g = Global {
        store: cli.global.store,
        plain_http: cli.global.plain_http,
        json: cli.global.json,
        quiet: cli.global.quiet,
    };
    match cli.command {
        Command::Pack {
            project_dir,
            output,
            platforms,
            from_cache,
            created,
            max_manifest_bytes,
        } => {
            let args = commands::PackArgs {
                project_dir,
                dest: output,
                platforms,
                from_cache,
                created,
                limits: SplitLimits {
                    max_manifest_bytes,
                    ..SplitLimits::default()
                },
            };
            Ok(commands::pack(&g, &args)?.0)
        }
        Command::Push { src, dest } => Ok(commands::push(&g, &src, &dest)?.0),
        Command::Pull { src, gomodcache } => {
            commands::pull(&g, &commands::PullArgs { src, gomodcache }, None)
        }
        Command::Inspect { src } => commands::inspect(&g, &src),
        Command::Store(StoreCommand::List) => commands::store_list(&g),
        Command::Store(StoreCommand::Prune { references, all }) => {
            commands::store_prune(&g, &references, all)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli) {
        Ok(outcome) => {
            outcome.print(json);
            ExitCode::from(outcome.exit_code as u8)
        }
        Err(err) => {
            eprintln!("error: {}", ocigo::error::render(&err));
            ExitCode::from(ocigo::error::exit_code(&err) as u8)
        }
    }
}
