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

// Parsed once per run: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Resolve a Go project's module closure and pack it as an OCI artifact
    /// (`ocigo pack toolchain ...` packs a Go toolchain instead).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Pack {
        #[command(subcommand)]
        what: Option<PackWhat>,
        /// The Go project (a directory with go.mod or go.work).
        #[arg(default_value = ".")]
        project_dir: PathBuf,
        /// Where to put the artifact: oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG].
        #[arg(short, long, value_name = "DEST", required = true)]
        output: Option<String>,
        /// Add the Go toolchain the project asks for (go.mod's toolchain line, else its
        /// go line), from GOPROXY, for each --platform: one reference, one pull installs both.
        #[arg(long)]
        with_toolchain: bool,
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
        #[command(flatten)]
        sign: SignFlags,
    },
    /// Copy an artifact between an OCI layout and a registry (either direction), sending only missing blobs.
    Push {
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG].
        dest: String,
        #[command(flatten)]
        sign: SignFlags,
    },
    /// Fetch a module bundle or toolchain, verify it, and write it into GOMODCACHE or a
    /// GOROOT (no go command needed).
    Pull {
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
        /// Module cache to write. Default: $GOMODCACHE, else $GOPATH/pkg/mod, else ~/go/pkg/mod.
        /// A toolchain goes there as the golang.org/toolchain module GOTOOLCHAIN switches to.
        #[arg(long, value_name = "DIR")]
        gomodcache: Option<PathBuf>,
        /// Install the artifact's Go toolchain as a GOROOT in DIR (created; a temporary
        /// directory beside it is renamed into place).
        #[arg(long, value_name = "DIR")]
        goroot: Option<PathBuf>,
        /// The toolchain platform to install (os/arch). Default: the host's.
        #[arg(long, value_name = "OS/ARCH")]
        platform: Option<String>,
        /// Replace a different toolchain already in --goroot.
        #[arg(long, requires = "goroot")]
        force: bool,
        /// Verify the bundle's cosign signature with this public key before fetching anything (repeatable).
        #[arg(long = "verify-key", value_name = "PUB")]
        verify_keys: Vec<PathBuf>,
        /// Modules verified and installed at once (file-system bound, so more than cores helps).
        #[arg(long, env = "OCIGO_JOBS", default_value_t = ocigo::install::DEFAULT_JOBS as u16,
              value_parser = clap::value_parser!(u16).range(1..=256))]
        jobs: u16,
        #[command(flatten)]
        verify: VerifyRules,
    },
    /// Show a bundle's modules, versions and sizes.
    Inspect {
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
    },
    /// List or prune the local content store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Sign an artifact the way cosign does (key based, stored as the sha256-<hex>.sig tag).
    Sign {
        /// Private key file (cosign's format). Password from COSIGN_PASSWORD or a prompt.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// Annotation to put in the signed payload (repeatable).
        #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
        annotations: Vec<(String, String)>,
        /// The docker-reference the payload names. Default: HOST/REPO of REF; none for a layout.
        #[arg(long, value_name = "HOST/REPO")]
        identity: Option<String>,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        reference: String,
    },
    /// Verify cosign signatures offline (no transparency log, no certificate authority).
    Verify {
        /// Public key (repeatable; cosign's PEM).
        #[arg(long = "key", value_name = "PUB", required = true)]
        keys: Vec<PathBuf>,
        #[command(flatten)]
        rules: VerifyRules,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        reference: String,
    },
    /// Manage signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand)]
enum PackWhat {
    /// Pack a Go toolchain (default: golang.org/toolchain through GOPROXY, its h1 checked
    /// against the checksum database) for one or more platforms under one index.
    Toolchain {
        /// The Go release, such as go1.26.8 (taken from the source with --from-archive or
        /// --from-goroot).
        version: Option<String>,
        /// Where to put the artifact: oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG].
        #[arg(short, long, value_name = "DEST")]
        output: String,
        /// Pack this os/arch (repeatable). Default: the host's.
        #[arg(long = "platform", value_name = "OS/ARCH")]
        platforms: Vec<String>,
        /// Pack an official release archive (go1.X.Y.<os>-<arch>.tar.gz or .zip) instead.
        #[arg(
            long,
            value_name = "ARCHIVE",
            requires = "sha256",
            conflicts_with = "from_goroot"
        )]
        from_archive: Option<PathBuf>,
        /// The archive's SHA-256 (from go.dev/dl), checked before anything is read.
        #[arg(long, value_name = "HEX", requires = "from_archive")]
        sha256: Option<String>,
        /// Pack a local GOROOT (version from DIR/VERSION, platform from DIR/bin/go env).
        #[arg(long, value_name = "DIR")]
        from_goroot: Option<PathBuf>,
        #[command(flatten)]
        sign: SignFlags,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Write an encrypted private key and its public key, in cosign's formats.
    Generate {
        /// Writes PREFIX.key and PREFIX.pub.
        #[arg(long, default_value = "cosign")]
        output_prefix: String,
        /// Accept an empty password (COSIGN_PASSWORD set to nothing, or an empty answer).
        #[arg(long)]
        allow_empty_password: bool,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
struct SignFlags {
    /// Sign the result with this private key (cosign's format).
    #[arg(long = "sign", value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// Annotation to put in the signed payload (repeatable; with --sign).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation, requires = "sign_key")]
    annotations: Vec<(String, String)>,
    /// The docker-reference the signature names (with --sign).
    #[arg(long, value_name = "HOST/REPO", requires = "sign_key")]
    identity: Option<String>,
}

impl SignFlags {
    fn into_sign_with(self) -> Option<commands::SignWith> {
        self.sign_key.map(|key| commands::SignWith {
            key,
            annotations: self.annotations.into_iter().collect(),
            identity: self.identity,
        })
    }
}

#[derive(Args)]
struct VerifyRules {
    /// How many of the given keys must have signed (default 1).
    #[arg(long, value_parser = clap::value_parser!(usize))]
    threshold: Option<usize>,
    /// Repository the signatures must name (default: the repository verified; layouts: any).
    #[arg(long = "expect-identity", value_name = "REPO")]
    expect_identity: Option<String>,
}

fn parse_annotation(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
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
            what:
                Some(PackWhat::Toolchain {
                    version,
                    output,
                    platforms,
                    from_archive,
                    sha256,
                    from_goroot,
                    sign,
                }),
            ..
        } => {
            let source = match (from_archive, from_goroot, version) {
                (Some(path), None, None) => commands::ToolchainSource::Archive {
                    path,
                    sha256: sha256.unwrap_or_default(),
                },
                (None, Some(dir), None) => commands::ToolchainSource::Goroot { dir },
                (None, None, Some(version)) => commands::ToolchainSource::Proxy { version },
                (None, None, None) => {
                    return Err(ocigo::error::fail(
                        ocigo::error::Kind::Usage,
                        "name the Go release to pack (such as go1.26.8), or use --from-archive or --from-goroot",
                    ));
                }
                _ => {
                    return Err(ocigo::error::fail(
                        ocigo::error::Kind::Usage,
                        "the version comes from the archive or GOROOT: do not name one with --from-archive or --from-goroot",
                    ));
                }
            };
            commands::pack_toolchain(
                &g,
                &commands::PackToolchainArgs {
                    source,
                    platforms,
                    dest: output,
                    sign: sign.into_sign_with(),
                },
            )
        }
        Command::Pack {
            what: None,
            project_dir,
            output,
            with_toolchain,
            platforms,
            from_cache,
            created,
            max_manifest_bytes,
            sign,
        } => {
            let args = commands::PackArgs {
                project_dir,
                dest: output.expect("required by clap"),
                with_toolchain,
                platforms,
                from_cache,
                created,
                limits: SplitLimits {
                    max_manifest_bytes,
                    ..SplitLimits::default()
                },
                sign: sign.into_sign_with(),
            };
            Ok(commands::pack(&g, &args)?.0)
        }
        Command::Push { src, dest, sign } => {
            Ok(commands::push(&g, &src, &dest, sign.into_sign_with().as_ref())?.0)
        }
        Command::Pull {
            src,
            gomodcache,
            goroot,
            platform,
            force,
            verify_keys,
            jobs,
            verify,
        } => commands::pull_verified(
            &g,
            &commands::PullArgs {
                src,
                gomodcache,
                jobs: jobs.into(),
                goroot,
                platform,
                force,
            },
            commands::VerifyWith {
                keys: verify_keys,
                threshold: verify.threshold,
                identity: verify.expect_identity,
            },
        ),
        Command::Inspect { src } => commands::inspect(&g, &src),
        Command::Store(StoreCommand::List) => commands::store_list(&g),
        Command::Store(StoreCommand::Prune { references, all }) => {
            commands::store_prune(&g, &references, all)
        }
        Command::Sign {
            key,
            annotations,
            identity,
            reference,
        } => commands::sign_command(
            &g,
            &reference,
            &commands::SignWith {
                key,
                annotations: annotations.into_iter().collect(),
                identity,
            },
        ),
        Command::Verify {
            keys,
            rules,
            reference,
        } => commands::verify_command(
            &g,
            &reference,
            &commands::VerifyWith {
                keys,
                threshold: rules.threshold,
                identity: rules.expect_identity,
            },
        ),
        Command::Key(KeyCommand::Generate {
            output_prefix,
            allow_empty_password,
            force,
        }) => commands::key_generate(&output_prefix, allow_empty_password, force),
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
            // Messages quote bundles and servers: no control characters,
            // no credentials, whatever they held.
            let safe = |s: &str| {
                ocigo::text::terminal_safe(&ocigo::text::scrub_credentials(s)).into_owned()
            };
            eprintln!("error: {}", safe(&ocigo::error::render(&err)));
            for hint in ocigo::error::hints(&err) {
                eprintln!("hint: {}", safe(&hint));
            }
            ExitCode::from(ocigo::error::exit_code(&err) as u8)
        }
    }
}
