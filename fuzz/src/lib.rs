//! Shared set-up of the data-source fuzz targets (`source_csv`,
//! `source_ndjson`, `source_json`): one store and one data file per process,
//! the file overwritten with each input and loaded as an insights data source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use triggerfish_data::insights::source::{FileSource, Source};
use triggerfish_data::insights::workspace::{parse_workspace_file, SourceSpec};
use triggerfish_data::odata::ColumnType;
use triggerfish_data::store::{import_rows, EntityDb, ImportFormat, PageLimits, PageRequest};

/// The entity the fuzzed source is stored as.
pub const ENTITY: &str = "Fuzz";
/// The entity of the second import, with every column's type given.
pub const ENTITY_TYPED: &str = "FuzzTyped";
/// The source's key column: seed files name their key `Id`.
pub const KEY: &str = "Id";
/// Malformed rows a refresh skips before failing (so both paths are reached).
pub const TOLERANCE: usize = 2;

struct Ctx {
    dir: PathBuf,
    store: EntityDb,
    /// The csv, ndjson and json sources (see [`source_spec`]).
    sources: Vec<SourceSpec>,
}

fn format_index(format: ImportFormat) -> usize {
    match format {
        ImportFormat::Csv => 0,
        ImportFormat::Ndjson => 1,
        ImportFormat::Json => 2,
    }
}

/// The source reading `data.<ext>` as `triggerfish.toml` would declare it,
/// validated by the workspace loader (so its root folder is the directory).
fn source_spec(dir: &Path, ext: &str) -> SourceSpec {
    let text = format!(
        "[[sources]]\nname = \"fuzz-{ext}\"\nentity = \"{ENTITY}\"\n\
         path = \"data.{ext}\"\nkey = \"{KEY}\"\ntolerance = {TOLERANCE}\n"
    );
    let ws = parse_workspace_file(&dir.join("workspace.toml"), &text)
        .expect("the fuzz workspace is valid");
    ws.sources.into_iter().next().expect("one source")
}

const DIR_PREFIX: &str = "triggerfish-fuzz-";

/// Remove this process's directory when libFuzzer exits normally.
extern "C" fn remove_dir() {
    if let Some(ctx) = CTX.get() {
        let _ = std::fs::remove_dir_all(&ctx.dir);
    }
}

extern "C" {
    fn atexit(cb: extern "C" fn()) -> i32;
}

static CTX: OnceLock<Ctx> = OnceLock::new();

/// Directories left by processes that are gone (a crash skips `atexit`).
fn sweep_stale(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn ctx() -> &'static Ctx {
    CTX.get_or_init(|| {
        let tmp = std::env::temp_dir();
        sweep_stale(&tmp);
        let dir = tmp.join(format!("{DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the fuzz directory");
        let store = EntityDb::open(&dir.join("store.sqlite"), PageLimits::default())
            .expect("open the entity store");
        // SAFETY: registers a plain function; the C runtime calls it at exit.
        unsafe {
            atexit(remove_dir);
        }
        let sources = ["csv", "ndjson", "json"]
            .iter()
            .map(|ext| source_spec(&dir, ext))
            .collect();
        Ctx {
            dir,
            store,
            sources,
        }
    })
}

/// A different type for each column, so the second import converts every
/// value to a type it was not inferred as.
fn other_type(t: ColumnType) -> ColumnType {
    match t {
        ColumnType::String => ColumnType::Integer,
        ColumnType::Integer => ColumnType::Decimal,
        ColumnType::Decimal => ColumnType::Boolean,
        ColumnType::Boolean => ColumnType::DateTime,
        ColumnType::DateTime => ColumnType::String,
    }
}

/// Write `data` as the source's file and refresh the source; when that
/// succeeds, read the rows back and import the file again with every
/// column's type given (a different one than inferred).
pub fn run_source(format: ImportFormat, data: &[u8]) {
    let ctx = ctx();
    let spec = ctx.sources[format_index(format)].clone();
    let path = spec.path.clone();
    std::fs::write(&path, data).expect("write the data file");
    let Ok(loaded) = FileSource::new(spec).refresh(&ctx.store) else {
        return;
    };
    assert!(loaded.rejected <= TOLERANCE as u64);

    // The rows just stored read back (the first page of them).
    let meta = ctx.store.meta(ENTITY).expect("meta of a loaded source");
    assert_eq!(meta.rows, loaded.rows);
    let page = ctx
        .store
        .get_page(
            "fuzz",
            ENTITY,
            &PageRequest {
                top: Some(1_000),
                ..PageRequest::default()
            },
        )
        .expect("first page of a loaded source");
    assert_eq!(page.items.len() as u64, loaded.rows.min(1_000));

    // Every type given, none as inferred; malformed rows are all skipped.
    let types: BTreeMap<String, ColumnType> = meta
        .schema
        .columns
        .iter()
        .map(|(c, t)| (c.clone(), other_type(*t)))
        .collect();
    let _ = import_rows(
        &path,
        Some(format),
        &types,
        KEY,
        usize::MAX,
        &ctx.store,
        ENTITY_TYPED,
    );
}
