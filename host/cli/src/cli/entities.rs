//! `triggerfish entities …`: import, list and query the entity store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::dialect::DialectArgs;
use crate::cli::term::{errln, outln};
use crate::config_file::Config;
use anyhow::{bail, Context as _};
use clap::Subcommand;
use triggerfish_data::store::{
    import, named_column, parse_type, type_name, EntityDb, ImportFormat, ImportSpec, PageError,
    PageRequest,
};

#[derive(Subcommand)]
pub enum EntitiesCommand {
    /// Load a CSV, JSON (array of objects) or NDJSON file as an entity,
    /// replacing its rows atomically.
    Import {
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
        /// Entity name, e.g. `Customer`.
        #[arg(long)]
        entity: String,
        /// Primary-key field.
        #[arg(long)]
        key: String,
        /// Column type, `Field=type` (string, integer, decimal, boolean, datetime);
        /// repeatable. Other columns are inferred.
        #[arg(long = "type", value_name = "FIELD=TYPE")]
        types: Vec<String>,
        /// File format when the extension does not say (csv, tsv, json, ndjson).
        #[arg(long)]
        format: Option<String>,
        #[command(flatten)]
        dialect: DialectArgs,
        /// The data file.
        file: PathBuf,
    },
    /// List entities with their key, row count and columns.
    List {
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
    },
    /// Get items as JSON lines, with the same engine plugins use.
    Get {
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
        #[arg(long)]
        entity: String,
        /// `$filter`, e.g. "Country eq 'FR' and Age ge 18".
        #[arg(long)]
        filter: Option<String>,
        /// `$select`: comma-separated fields.
        #[arg(long)]
        select: Option<String>,
        /// `$orderby`, e.g. "LastName asc, Age desc".
        #[arg(long)]
        orderby: Option<String>,
        /// `$top`: page size.
        #[arg(long)]
        top: Option<u32>,
        /// `$skip`.
        #[arg(long)]
        skip: Option<u64>,
        /// Only the items of this partition (see `entities partitions`).
        #[arg(long)]
        partition: Option<String>,
        /// Follow `next-skip` and print every page.
        #[arg(long)]
        all: bool,
    },
    /// List an entity's partitions: one per imported file (or database
    /// refresh), with its id, origin, rows and time.
    Partitions {
        #[arg(long, short, default_value = "triggerfish.toml")]
        config: PathBuf,
        #[arg(long)]
        entity: String,
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

fn open(config: &Path) -> anyhow::Result<EntityDb> {
    let config = Config::load(config)?;
    let store = config.open_store()?;
    store.declare_writable(&config.settings.writable)?;
    Ok(store)
}

pub fn run(cmd: EntitiesCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EntitiesCommand::Import {
            config,
            entity,
            key,
            types,
            format,
            dialect,
            file,
        } => {
            let store = open(&config)?;
            let mut given = BTreeMap::new();
            for t in &types {
                let Some((field, ty)) = t.split_once('=') else {
                    bail!("--type {t}: expected FIELD=TYPE");
                };
                let ty = parse_type(ty.trim()).with_context(|| {
                    format!("--type {t}: unknown type '{ty}' (string, integer, decimal, boolean, datetime)")
                })?;
                given.insert(named_column(field.trim()), ty);
            }
            let dialect = dialect.dialect(format.as_deref(), &file)?;
            let format =
                match format {
                    None => None,
                    Some(f) => Some(ImportFormat::parse(&f).with_context(|| {
                        format!("--format {f}: expected csv, tsv, json or ndjson")
                    })?),
                };
            let key = named_column(&key);
            let files = [file];
            let spec = ImportSpec {
                format,
                dialect: &dialect,
                ..ImportSpec::new(&files, &given, &key)
            };
            let report = import(&spec, &store, &entity)?;
            let cols: Vec<String> = report
                .columns
                .iter()
                .map(|(c, t)| format!("{c} {}", type_name(*t)))
                .collect();
            outln!(
                "imported {} rows into {entity} (key {key}; columns: {})",
                report.rows,
                cols.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        EntitiesCommand::Partitions {
            config,
            entity,
            json,
        } => {
            let store = open(&config)?;
            let parts = store.partitions(&entity)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&parts)?);
                return Ok(ExitCode::SUCCESS);
            }
            for p in parts {
                outln!(
                    "{:<10} {:>9} rows  {}  {}",
                    p.id,
                    p.rows,
                    p.refreshed_at,
                    p.origin
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        EntitiesCommand::List { config } => {
            let store = open(&config)?;
            let names = store.entity_names()?;
            if names.is_empty() {
                outln!("no entities in {}", store.path().display());
            }
            for name in names {
                let m = store.meta(&name)?;
                let cols: Vec<String> = m
                    .schema
                    .columns
                    .iter()
                    .map(|(c, t)| format!("{c} {}", type_name(*t)))
                    .collect();
                outln!(
                    "{name}  ({} rows, key {})\n  {}",
                    m.rows,
                    m.key,
                    cols.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        EntitiesCommand::Get {
            config,
            entity,
            filter,
            select,
            orderby,
            top,
            skip,
            partition,
            all,
        } => {
            let store = open(&config)?;
            let mut req = PageRequest {
                filter: filter.clone(),
                select: select
                    .as_ref()
                    .map(|s| s.split(',').map(|f| f.trim().to_owned()).collect()),
                orderby: orderby.clone(),
                top,
                skip,
                partition,
            };
            let mut out = std::io::stdout().lock();
            loop {
                let page = match store.get_page("cli", &entity, &req) {
                    Ok(p) => p,
                    Err(PageError::Query(q)) => {
                        let text = match q.option {
                            "$filter" => filter.clone(),
                            "$orderby" => orderby.clone(),
                            "$select" => select.clone(),
                            _ => None,
                        };
                        if let Some(text) = text {
                            errln!("  {text}\n  {}^", " ".repeat(q.position as usize));
                        }
                        bail!("{q}");
                    }
                    Err(e) => return Err(e.into()),
                };
                for item in page.items {
                    use std::io::Write;
                    writeln!(out, "{}", serde_json::Value::Object(item))?;
                }
                match page.next_skip {
                    Some(next) if all => req.skip = Some(next),
                    Some(next) => {
                        errln!("next-skip: {next}");
                        break;
                    }
                    None => break,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
