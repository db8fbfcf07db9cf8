//! `palisade field` and `palisade fernet`: encrypt, decrypt and migrate columns.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use palisade_core::keyring::Keyring;
use palisade_core::time::{Clock, SystemClock};
use palisade_field::fernet::Fernet;
use palisade_field::migrate::postgres::{PgStore, tokio_postgres};
use palisade_field::migrate::{Migrator, Status};
use palisade_field::{Context, FieldCipher, RowId};
use zeroize::Zeroizing;

/// `palisade field` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Encrypt standard input to standard output (the `pal1:` text form).
    Encrypt(CryptArgs),
    /// Decrypt standard input (text or raw form) to standard output.
    Decrypt(CryptArgs),
    /// Encrypt, re-encrypt or convert from Fernet a PostgreSQL column, in resumable batches.
    Migrate(MigrateArgs),
    /// Count a column's values by state: plaintext, current key, older keys, undecryptable.
    Status(ColumnArgs),
}

/// Where the keys come from.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyArgs {
    /// A keyring file: `id:state:base64` entries, one a line (`palisade keygen field`).
    #[arg(long, value_name = "F", required_unless_present = "key_env")]
    key_file: Option<PathBuf>,
    /// An environment variable holding the keyring instead.
    #[arg(long, value_name = "VAR", conflicts_with = "key_file")]
    key_env: Option<String>,
}

impl KeyArgs {
    fn cipher(&self) -> Result<FieldCipher> {
        let ring = match (&self.key_file, &self.key_env) {
            (Some(path), _) => Keyring::from_file(path)?,
            (None, Some(var)) => Keyring::from_env(var)?,
            (None, None) => bail!("give --key-file or --key-env"),
        };
        Ok(FieldCipher::new(&ring)?)
    }
}

/// `palisade field encrypt|decrypt` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct CryptArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// Where the value lives, bound into the ciphertext: `TABLE.COLUMN:ROW`.
    #[arg(long, value_name = "TABLE.COLUMN:ROW")]
    context: String,
    /// The tenant, bound too when given.
    #[arg(long)]
    tenant: Option<String>,
}

/// A parsed `TABLE.COLUMN:ROW`.
struct ContextSpec<'a> {
    table: &'a str,
    column: &'a str,
    row: &'a str,
}

impl<'a> ContextSpec<'a> {
    fn parse(spec: &'a str) -> Result<Self> {
        let Some((place, row)) = spec.split_once(':') else {
            bail!("--context must be TABLE.COLUMN:ROW, got {spec:?}");
        };
        let Some((table, column)) = place.split_once('.') else {
            bail!("--context must be TABLE.COLUMN:ROW, got {spec:?}");
        };
        if table.is_empty() || column.is_empty() || row.is_empty() {
            bail!("--context must be TABLE.COLUMN:ROW with none of them empty");
        }
        Ok(Self { table, column, row })
    }

    fn context(&self, tenant: Option<&'a str>) -> Context<'a> {
        // An integer row id is bound as an integer, as the migration engine binds `bigint` ids.
        let row = match self.row.parse::<i64>() {
            Ok(id) => RowId::Int(id),
            Err(_) => RowId::Bytes(self.row.as_bytes()),
        };
        let ctx = Context::new(self.table, self.column, row);
        match tenant {
            Some(t) => ctx.tenant(t),
            None => ctx,
        }
    }
}

fn read_stdin() -> Result<Zeroizing<Vec<u8>>> {
    let mut input = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .context("cannot read standard input")?;
    Ok(input)
}

/// `palisade fernet` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum FernetCommand {
    /// Decrypt a Fernet token read from standard input to standard output.
    Decrypt(FernetArgs),
}

/// `palisade fernet decrypt` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct FernetArgs {
    /// The key (URL-safe base64); several, comma-separated, act as MultiFernet. Visible in
    /// `ps`: prefer --key-env or --key-file.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    key: Option<String>,
    /// An environment variable holding the key(s) instead (keeps them out of `ps`).
    #[arg(long, value_name = "VAR")]
    key_env: Option<String>,
    /// A file holding the key(s) (the token comes on standard input).
    #[arg(long, value_name = "FILE")]
    key_file: Option<std::path::PathBuf>,
    /// Refuse tokens older than this many seconds.
    #[arg(long, value_name = "SECONDS")]
    ttl: Option<u64>,
}

/// Runs `palisade fernet decrypt`.
pub(crate) fn fernet(command: &FernetCommand) -> Result<()> {
    let FernetCommand::Decrypt(args) = command;
    if args.key_file.as_deref() == Some(std::path::Path::new("-")) {
        bail!("--key-file cannot be standard input: the token is read from it");
    }
    let keys = crate::secret_input::read(
        "--key",
        args.key.as_deref(),
        args.key_env.as_deref(),
        args.key_file.as_deref(),
    )?;
    let fernet = Fernet::from_keys(&keys)?;
    let input = read_stdin()?;
    let token = input.trim_ascii();
    let plaintext = fernet
        .decrypt(token, args.ttl.map(Duration::from_secs), SystemClock.now())
        .context("invalid token")?;
    std::io::stdout().lock().write_all(&plaintext)?;
    Ok(())
}

/// `palisade field status` arguments (and the column part of `migrate`).
#[derive(Debug, clap::Args)]
pub(crate) struct ColumnArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// PostgreSQL connection string (`postgres://user@host:5432/db`).
    #[arg(long, value_name = "URL", env = "PALISADE_DATABASE_URL")]
    database_url: String,
    /// The table.
    #[arg(long)]
    table: String,
    /// The integer primary-key column.
    #[arg(long, value_name = "ID")]
    id_column: String,
    /// The column holding the values now.
    #[arg(long = "from", value_name = "COL")]
    from: String,
    /// The column to write ciphertext to (the same as --from to migrate in place).
    #[arg(long = "to", value_name = "COL")]
    to: String,
    /// The column name bound into each ciphertext's context (default: --to).
    #[arg(long, value_name = "COL")]
    context_column: Option<String>,
    /// Fernet key(s), comma-separated: values that are Fernet tokens are converted. Visible
    /// in `ps`: prefer --from-fernet-key-env or --from-fernet-key-file.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    from_fernet_key: Option<String>,
    /// An environment variable holding the Fernet key(s).
    #[arg(long, value_name = "VAR")]
    from_fernet_key_env: Option<String>,
    /// A file holding the Fernet key(s); `-` reads them from standard input.
    #[arg(long, value_name = "FILE")]
    from_fernet_key_file: Option<std::path::PathBuf>,
}

/// `palisade field migrate` arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    column: ColumnArgs,
    /// Rows per batch (each batch is one transaction).
    #[arg(long = "batch", value_name = "N", default_value_t = 1_000)]
    batch: usize,
    /// Stop after this many batches (the next run resumes where this one stopped).
    #[arg(long, value_name = "N")]
    max_batches: Option<u64>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Runs a `palisade field` subcommand.
pub(crate) fn run(command: &Command) -> Result<()> {
    match command {
        Command::Encrypt(args) => {
            let cipher = args.keys.cipher()?;
            let spec = ContextSpec::parse(&args.context)?;
            let input = read_stdin()?;
            let sealed = cipher.encrypt_text(&input, &spec.context(args.tenant.as_deref()))?;
            writeln!(std::io::stdout().lock(), "{sealed}")?;
            Ok(())
        }
        Command::Decrypt(args) => {
            let cipher = args.keys.cipher()?;
            let spec = ContextSpec::parse(&args.context)?;
            let input = read_stdin()?;
            let plaintext = cipher
                .decrypt(input.trim_ascii(), &spec.context(args.tenant.as_deref()))
                .context("cannot decrypt")?;
            std::io::stdout().lock().write_all(&plaintext)?;
            Ok(())
        }
        Command::Migrate(args) => runtime()?.block_on(migrate(args)),
        Command::Status(args) => runtime()?.block_on(status(args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| "cannot connect to the database")?;
    tokio::spawn(async move {
        // The connection ends with an error only when the client is gone or the server
        // dropped it; the next query reports that to the user.
        let _ = connection.await;
    });
    Ok(client)
}

fn migrator<'a>(cipher: &'a FieldCipher, args: &ColumnArgs) -> Result<Migrator<'a>> {
    let column = args.context_column.as_deref().unwrap_or(&args.to);
    let mut m = Migrator::new(cipher, &args.table, column);
    if args.from_fernet_key.is_some()
        || args.from_fernet_key_env.is_some()
        || args.from_fernet_key_file.is_some()
    {
        let keys = crate::secret_input::read(
            "--from-fernet-key",
            args.from_fernet_key.as_deref(),
            args.from_fernet_key_env.as_deref(),
            args.from_fernet_key_file.as_deref(),
        )?;
        m = m.fernet(Fernet::from_keys(&keys)?);
    }
    Ok(m)
}

async fn migrate(args: &MigrateArgs) -> Result<()> {
    let c = &args.column;
    let cipher = c.keys.cipher()?;
    let migrator = migrator(&cipher, c)?
        .batch_size(args.batch)
        .max_batches(args.max_batches);
    let mut client = connect(&c.database_url).await?;
    let total = client
        .query_one(
            &format!("SELECT count(*) FROM \"{}\"", c.table.replace('"', "\"\"")),
            &[],
        )
        .await
        .context("cannot count the table's rows")?
        .get::<_, i64>(0);
    let mut store = PgStore::new(&mut client, &c.table, &c.id_column, &c.from, &c.to)?;
    store.prepare().await?;

    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0))
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let progress = migrator
        .run_with_progress(&mut store, |p| {
            bar.set_position(p.rows);
            bar.set_message(format!(
                "encrypted {} rewrapped {} converted {}",
                p.encrypted, p.rewrapped, p.converted
            ));
        })
        .await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} rows in {} batches ({:.0} rows/s): encrypted {}, rewrapped {}, converted {}, \
         already current {}, null {}, undecryptable {}, changed meanwhile {}",
        if progress.finished {
            "done"
        } else {
            "stopped (run again to resume)"
        },
        progress.rows,
        progress.batches,
        progress.rows as f64 / secs,
        progress.encrypted,
        progress.rewrapped,
        progress.converted,
        progress.skipped,
        progress.nulls,
        progress.undecryptable,
        progress.conflicts,
    )?;
    Ok(())
}

async fn status(args: &ColumnArgs) -> Result<()> {
    let cipher = args.keys.cipher()?;
    let migrator = migrator(&cipher, args)?;
    let mut client = connect(&args.database_url).await?;
    let mut store = PgStore::new(
        &mut client,
        &args.table,
        &args.id_column,
        &args.from,
        &args.to,
    )?;
    let s: Status = migrator.status(&mut store).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "rows:          {}", s.rows)?;
    writeln!(out, "null:          {}", s.nulls)?;
    writeln!(out, "plaintext:     {}", s.plaintext)?;
    writeln!(out, "fernet:        {}", s.fernet)?;
    writeln!(
        out,
        "current key:   {} ({})",
        s.current,
        cipher.active_key_id()
    )?;
    let older: u64 = s.older.values().sum();
    writeln!(out, "older keys:    {older}")?;
    for (id, n) in &s.older {
        writeln!(out, "  {id}: {n}")?;
    }
    writeln!(out, "undecryptable: {}", s.undecryptable)?;
    writeln!(
        out,
        "complete:      {}",
        if s.is_complete() { "yes" } else { "no" }
    )?;
    Ok(())
}
