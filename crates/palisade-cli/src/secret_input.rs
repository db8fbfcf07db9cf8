//! Secrets and keys from the environment, a file or standard input, so that none has to be on
//! the command line, where `ps` shows it to every user of the machine.

use std::io::Read as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use zeroize::Zeroizing;

/// The longest secret read from a file or standard input.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The one secret given by `value` (argv), `env` (a variable's name) or `file` (a path, `-`
/// for standard input), trimmed of surrounding white space. `what` names the option family in
/// messages (`--secret`, `--key`).
pub(crate) fn read(
    what: &str,
    value: Option<&str>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Zeroizing<String>> {
    let text = match (value, env, file) {
        (Some(v), None, None) => Zeroizing::new(v.to_owned()),
        (None, Some(var), None) => Zeroizing::new(
            std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?,
        ),
        (None, None, Some(path)) => {
            let mut bytes = Zeroizing::new(Vec::new());
            if path == Path::new("-") {
                std::io::stdin()
                    .take(MAX_SECRET_BYTES)
                    .read_to_end(&mut bytes)
                    .context("cannot read standard input")?;
            } else {
                std::fs::File::open(path)
                    .and_then(|f| f.take(MAX_SECRET_BYTES).read_to_end(&mut bytes))
                    .with_context(|| format!("cannot read {}", path.display()))?;
            }
            let text = core::str::from_utf8(&bytes)
                .with_context(|| format!("{what} is not utf-8 text"))?;
            Zeroizing::new(text.to_owned())
        }
        (None, None, None) => bail!("give {what}, {what}-env or {what}-file"),
        _ => bail!("give only one of {what}, {what}-env and {what}-file"),
    };
    Ok(Zeroizing::new(text.trim().to_owned()))
}
