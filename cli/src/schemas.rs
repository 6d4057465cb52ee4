//! `saga schemas`: the message contract as other tools see it.
//!
//! * `list` — every schema (compiled in, or of `--dir`) with its version,
//!   fingerprint (the 8 header bytes, as fastavro prints them), legacy
//!   fingerprint and Parsing Canonical Form.
//! * `fingerprint FILE...` — the line `schemas/fingerprints.txt` needs for
//!   each file (a non-message schema prints fingerprint and canonical form).
//! * `check DIR` — compares a directory of `.avsc` files with the pinned
//!   set (compiled in, or `--pins FILE`); exits non-zero when a published
//!   version changed, disappeared, or a version is not pinned.

use std::path::PathBuf;

use anyhow::Context;
use events::SchemaRegistry;
use events::pinned::{self, PinnedSet};

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Print every schema: name, version, fingerprint, legacy fingerprint, canonical form.
    List {
        /// Read the `.avsc` files of this directory instead of the compiled-in schemas.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print the pins line (or fingerprint and canonical form) of each schema file.
    Fingerprint {
        /// `.avsc` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Compare a directory of `.avsc` files with the pinned fingerprints; fails on a mismatch.
    Check {
        /// Directory of `<area>/<Name>.v<N>.avsc` files (e.g. `schemas/`).
        dir: PathBuf,
        /// Pins file to compare with (default: the one compiled in, `schemas/fingerprints.txt`).
        #[arg(long)]
        pins: Option<PathBuf>,
    },
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::List { dir } => list(dir),
        Command::Fingerprint { files } => fingerprint(&files),
        Command::Check { dir, pins } => check(&dir, pins),
    }
}

fn load(dir: &std::path::Path) -> anyhow::Result<SchemaRegistry> {
    SchemaRegistry::from_dir(dir).with_context(|| format!("loading the schemas of {}", dir.display()))
}

fn list(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let owned;
    let registry = match dir {
        Some(dir) => {
            owned = load(&dir)?;
            &owned
        }
        None => SchemaRegistry::embedded(),
    };
    for s in registry.schemas() {
        println!(
            "{} v{} fingerprint={} legacy={} {}",
            s.name,
            s.version,
            pinned::hex(s.fingerprint),
            pinned::hex(s.legacy_fingerprint),
            s.canonical_form
        );
    }
    Ok(())
}

fn fingerprint(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let name = file.display().to_string();
        match SchemaRegistry::from_sources([(name.as_str(), text.as_str())]) {
            Ok(registry) => {
                for s in registry.schemas() {
                    println!("{}", pinned::pin_line(s));
                }
            }
            // Not a message file (`<Name>.v<N>.avsc` with a record): still
            // a schema with a canonical form.
            Err(_) => {
                let canonical = events::canonical::parsing_canonical_form(&text)
                    .with_context(|| format!("{} is not an Avro schema", file.display()))?;
                let fp = events::fingerprint::crc64_avro(canonical.as_bytes());
                println!("{name} {} {canonical}", pinned::hex(fp));
            }
        }
    }
    Ok(())
}

fn check(dir: &std::path::Path, pins: Option<PathBuf>) -> anyhow::Result<()> {
    let pins = match &pins {
        Some(file) => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            PinnedSet::parse(&text).with_context(|| format!("reading {}", file.display()))?
        }
        None => PinnedSet::embedded().context("the compiled-in pins")?,
    };
    let registry = load(dir)?;
    let problems = pins.check(&registry);
    if problems.is_empty() {
        println!("ok: {} schemas in {} match the pinned set", registry.len(), dir.display());
        return Ok(());
    }
    for p in &problems {
        println!("MISMATCH {p}");
    }
    anyhow::bail!("{} of the schemas in {} do not match the pinned set", problems.len(), dir.display())
}
