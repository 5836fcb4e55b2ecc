//! `waygate plugins keygen | sign | verify`: the Ed25519 signing workflow for plugin
//! packages. A package is signed by writing `<component>.sig` beside its component.

use anyhow::{Context, bail};
use clap::Subcommand;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::path::{Path, PathBuf};
use waygate::hex;
use waygate::registry::{MANIFEST_FILE, Manifest, SIGNATURE_SUFFIX, verify_signature};

/// What to do with plugin signatures.
#[derive(Subcommand)]
pub enum PluginsCommand {
    /// Make a signing key (PKCS#8, written 0600) and print its public key, for the
    /// servers' `signatures.trusted_keys`.
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign the component of the package in DIR.
    Sign {
        /// The package directory (holding plugin.toml).
        dir: PathBuf,
        /// The private key file `keygen` wrote.
        #[arg(long)]
        key: PathBuf,
    },
    /// Check the signature of the package in DIR against trusted public keys.
    Verify {
        /// The package directory.
        dir: PathBuf,
        /// A trusted public key (hex); repeat for several.
        #[arg(long = "trusted-key", required = true)]
        trusted: Vec<String>,
    },
}

fn component(dir: &Path) -> anyhow::Result<PathBuf> {
    let manifest = Manifest::read(dir).map_err(anyhow::Error::msg)?;
    Ok(dir.join(manifest.component))
}

/// Runs one `plugins` command.
///
/// # Errors
///
/// Bad files or keys, or a signature that does not verify.
pub fn run(command: PluginsCommand) -> anyhow::Result<()> {
    match command {
        PluginsCommand::Keygen { out } => {
            let random = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&random)
                .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| anyhow::anyhow!("cannot use the generated key"))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            use std::io::Write;
            options
                .open(&out)
                .and_then(|mut file| file.write_all(pkcs8.as_ref()))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("{}", hex::encode(pair.public_key().as_ref()));
            eprintln!(
                "private key in {} (keep it secret); the line above is the public key",
                out.display()
            );
        }
        PluginsCommand::Sign { dir, key } => {
            let pkcs8 =
                std::fs::read(&key).with_context(|| format!("cannot read {}", key.display()))?;
            let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
                .map_err(|_| anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key", key.display()))?;
            let path = component(&dir)?;
            let wasm =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let signature_path = PathBuf::from(format!("{}{SIGNATURE_SUFFIX}", path.display()));
            std::fs::write(
                &signature_path,
                hex::encode(pair.sign(&wasm).as_ref()) + "\n",
            )
            .with_context(|| format!("cannot write {}", signature_path.display()))?;
            println!("signed {} → {}", path.display(), signature_path.display());
        }
        PluginsCommand::Verify { dir, trusted } => {
            let keys: Vec<[u8; 32]> = trusted
                .iter()
                .map(|text| {
                    hex::decode(text.trim())
                        .ok_or_else(|| anyhow::anyhow!("{text:?} is not a hex Ed25519 public key"))
                })
                .collect::<anyhow::Result<_>>()?;
            let path = component(&dir)?;
            let wasm =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let signature_path = PathBuf::from(format!("{}{SIGNATURE_SUFFIX}", path.display()));
            match verify_signature(&wasm, &signature_path, &keys) {
                Ok(()) => println!(
                    "{}: signed by a trusted key",
                    dir.join(MANIFEST_FILE).display()
                ),
                Err(reason) => bail!("{reason}"),
            }
        }
    }
    Ok(())
}
