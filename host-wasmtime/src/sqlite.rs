//! `spin:sqlite/sqlite@3.1.0`: the `default` database on `rusqlite` (bundled SQLite).
//!
//! - Only components that declare `sqlite_databases = ["default"]` may open it;
//!   others get `access-denied`, and any other name is `no-such-database`
//!   (Spin checks the component's allow list first, then whether the database
//!   exists, as here).
//! - The database is a file (by default `.spin/sqlite_db.db` next to the
//!   manifest, as `spin up` does) or in memory (`--sqlite-db memory`). One SQLite
//!   connection serves the whole process; each statement runs on a blocking
//!   thread while holding it, so every single statement is atomic.
//! - `execute` and `execute-async` run one statement and buffer its rows up to
//!   Spin's 128 MiB host limit. `execute-async` returns the column names, a
//!   stream of the rows and a future that carries an error met while stepping.
//! - `changes` / `last-insert-rowid` report the values after the connection's
//!   own last statement (captured under the lock), so concurrent requests do
//!   not see each other's counts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use rusqlite::types::Value as SqlValue;
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, ResourceTable, StreamReader};

use crate::bindings::sqlite3 as v3;
use crate::redis::MAX_HOST_BUFFERED_BYTES;

/// Where the `default` database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// A private in-memory database (lost on exit).
    Memory,
    /// A file, created with its parent directory if missing.
    File(PathBuf),
}

impl DatabaseLocation {
    /// Parses `--sqlite-db`: `memory` or a path (relative to `base`).
    pub fn parse(arg: &str, base: &Path) -> Self {
        if arg == "memory" || arg == ":memory:" {
            Self::Memory
        } else {
            Self::File(base.join(arg))
        }
    }

    /// `spin up`'s default: `.spin/sqlite_db.db` in the application directory.
    pub fn default_for(app_dir: &Path) -> Self {
        Self::File(app_dir.join(".spin").join("sqlite_db.db"))
    }
}

impl std::fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("in memory"),
            Self::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The process-wide `default` database.
#[derive(Debug, Clone)]
pub struct Database {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

/// The outcome of one statement.
#[derive(Debug, Clone)]
pub struct Executed {
    /// Column names.
    pub columns: Vec<String>,
    /// Rows read before the statement finished or failed.
    pub rows: Vec<v3::RowResult>,
    /// An error met while stepping, after `rows`.
    pub error: Option<v3::Error>,
    /// `sqlite3_changes` after the statement.
    pub changes: u64,
    /// `sqlite3_last_insert_rowid` after the statement.
    pub last_insert_rowid: i64,
}

fn io(e: impl std::fmt::Display) -> v3::Error {
    v3::Error::Io(e.to_string())
}

impl Database {
    /// Opens (creating if needed) the database.
    pub fn open(location: &DatabaseLocation) -> Result<Self> {
        let conn = match location {
            DatabaseLocation::Memory => rusqlite::Connection::open_in_memory()?,
            DatabaseLocation::File(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                rusqlite::Connection::open(path)
                    .with_context(|| format!("cannot open sqlite database {}", path.display()))?
            }
        };
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `sql` (one or more statements) on the calling thread, for
    /// `--sqlite` at startup.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("sqlite connection poisoned"))?;
        conn.execute_batch(sql)?;
        Ok(())
    }

    /// Runs one statement on the calling thread. `Err` means it could not be
    /// prepared or bound (nothing ran); errors while stepping land in
    /// [`Executed::error`].
    pub fn execute_blocking(
        &self,
        statement: &str,
        parameters: Vec<v3::Value>,
    ) -> Result<Executed, v3::Error> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| io("sqlite connection poisoned"))?;
        let mut stmt = conn.prepare_cached(statement).map_err(io)?;
        let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let params: Vec<SqlValue> = parameters.into_iter().map(to_sql).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(io)?;
        let mut out = Vec::new();
        let mut size = 0usize;
        let mut error = None;
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    let mut values = Vec::with_capacity(columns.len());
                    for i in 0..columns.len() {
                        match row.get::<_, SqlValue>(i) {
                            Ok(v) => values.push(from_sql(v)),
                            Err(e) => {
                                error = Some(io(e));
                                break;
                            }
                        }
                    }
                    if error.is_some() {
                        break;
                    }
                    size += values.iter().map(value_size).sum::<usize>();
                    if size > MAX_HOST_BUFFERED_BYTES {
                        error = Some(io(format!(
                            "query result exceeds limit of {MAX_HOST_BUFFERED_BYTES} bytes"
                        )));
                        break;
                    }
                    out.push(v3::RowResult { values });
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(io(e));
                    break;
                }
            }
        }
        drop(rows);
        drop(stmt);
        Ok(Executed {
            columns,
            rows: out,
            error,
            changes: conn.changes(),
            last_insert_rowid: conn.last_insert_rowid(),
        })
    }

    /// Runs one statement on a blocking thread.
    pub async fn execute(
        &self,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<Executed, v3::Error> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || db.execute_blocking(&statement, parameters))
            .await
            .map_err(io)?
    }
}

fn to_sql(v: v3::Value) -> SqlValue {
    match v {
        v3::Value::Integer(i) => SqlValue::Integer(i),
        v3::Value::Real(r) => SqlValue::Real(r),
        v3::Value::Text(t) => SqlValue::Text(t),
        v3::Value::Blob(b) => SqlValue::Blob(b),
        v3::Value::Null => SqlValue::Null,
    }
}

fn from_sql(v: SqlValue) -> v3::Value {
    match v {
        SqlValue::Integer(i) => v3::Value::Integer(i),
        SqlValue::Real(r) => v3::Value::Real(r),
        SqlValue::Text(t) => v3::Value::Text(t),
        SqlValue::Blob(b) => v3::Value::Blob(b),
        SqlValue::Null => v3::Value::Null,
    }
}

fn value_size(v: &v3::Value) -> usize {
    std::mem::size_of::<v3::Value>()
        + match v {
            v3::Value::Text(t) => t.len(),
            v3::Value::Blob(b) => b.len(),
            _ => 0,
        }
}

/// The host side of a guest's `connection` resource.
#[derive(Debug)]
pub struct SqliteConnection {
    db: Database,
    changes: u64,
    last_insert_rowid: i64,
}

/// Per-store state: whether this component may use the database.
#[derive(Debug, Clone, Default)]
pub struct SqliteState {
    /// The database, if this component declared `default` (else `None`).
    pub default: Option<Database>,
}

impl SqliteState {
    /// The `open` decision.
    pub fn open(&self, database: &str) -> Result<Database, v3::Error> {
        if database != "default" {
            // Spin: not in the component's allow list -> access denied.
            return Err(v3::Error::AccessDenied);
        }
        self.default.clone().ok_or(v3::Error::AccessDenied)
    }
}

/// What the generated bindings see of the store.
#[derive(Debug)]
pub struct SqliteView<'a> {
    /// The per-store state.
    pub state: &'a SqliteState,
    /// The store's resource table (shared with WASI).
    pub table: &'a mut ResourceTable,
}

/// Marker for `add_to_linker`.
#[derive(Debug)]
pub struct Sqlite;

impl HasData for Sqlite {
    type Data<'a> = SqliteView<'a>;
}

impl SqliteView<'_> {
    fn push(&mut self, db: Database) -> Result<Resource<SqliteConnection>, v3::Error> {
        self.table
            .push(SqliteConnection {
                db,
                changes: 0,
                last_insert_rowid: 0,
            })
            .map_err(|_| io("too many connections opened"))
    }

    fn db(&self, conn: &Resource<SqliteConnection>) -> Result<Database, v3::Error> {
        self.table
            .get(conn)
            .map(|c| c.db.clone())
            .map_err(|_| v3::Error::InvalidConnection)
    }

    fn record(&mut self, conn: &Resource<SqliteConnection>, e: &Executed) {
        if let Ok(c) = self.table.get_mut(conn) {
            c.changes = e.changes;
            c.last_insert_rowid = e.last_insert_rowid;
        }
    }
}

impl v3::Host for SqliteView<'_> {}

impl v3::HostConnection for SqliteView<'_> {
    async fn open(&mut self, database: String) -> Result<Resource<SqliteConnection>, v3::Error> {
        let db = self.state.open(&database)?;
        self.push(db)
    }

    async fn execute(
        &mut self,
        conn: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<v3::QueryResult, v3::Error> {
        let db = self.db(&conn)?;
        let done = db.execute(statement, parameters).await?;
        self.record(&conn, &done);
        match done.error {
            Some(e) => Err(e),
            None => Ok(v3::QueryResult {
                columns: done.columns,
                rows: done.rows,
            }),
        }
    }

    async fn last_insert_rowid(&mut self, conn: Resource<SqliteConnection>) -> i64 {
        self.table.get(&conn).map_or(0, |c| c.last_insert_rowid)
    }

    async fn changes(&mut self, conn: Resource<SqliteConnection>) -> u64 {
        self.table.get(&conn).map_or(0, |c| c.changes)
    }

    async fn drop(&mut self, conn: Resource<SqliteConnection>) -> anyhow::Result<()> {
        self.table.delete(conn)?;
        Ok(())
    }
}

impl<T: Send> v3::HostConnectionWithStore<T> for Sqlite {
    async fn open_async(
        accessor: &Accessor<T, Self>,
        database: String,
    ) -> Result<Resource<SqliteConnection>, v3::Error> {
        accessor.with(|mut access| {
            let mut view = access.get();
            let db = view.state.open(&database)?;
            view.push(db)
        })
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> Result<
        (
            Vec<String>,
            StreamReader<v3::RowResult>,
            FutureReader<Result<(), v3::Error>>,
        ),
        v3::Error,
    > {
        let db = accessor.with(|mut access| access.get().db(&conn))?;
        let done = db.execute(statement, parameters).await?;
        accessor.with(|mut access| {
            access.get().record(&conn, &done);
            let outcome = match done.error {
                Some(e) => Err(e),
                None => Ok(()),
            };
            let rows = StreamReader::new(&mut access, done.rows).map_err(io)?;
            let result =
                FutureReader::new(
                    &mut access,
                    async move { Ok::<_, wasmtime::Error>(outcome) },
                )
                .map_err(io)?;
            Ok((done.columns, rows, result))
        })
    }

    async fn last_insert_rowid_async(
        accessor: &Accessor<T, Self>,
        conn: Resource<SqliteConnection>,
    ) -> i64 {
        accessor.with(|mut access| {
            access
                .get()
                .table
                .get(&conn)
                .map_or(0, |c| c.last_insert_rowid)
        })
    }

    async fn changes_async(accessor: &Accessor<T, Self>, conn: Resource<SqliteConnection>) -> u64 {
        accessor.with(|mut access| access.get().table.get(&conn).map_or(0, |c| c.changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> v3::Value {
        v3::Value::Text(s.into())
    }

    #[test]
    fn executes_statements_and_reports_changes() {
        let db = Database::open(&DatabaseLocation::Memory).unwrap();
        db.execute_blocking("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)", vec![])
            .unwrap();
        let ins = db
            .execute_blocking(
                "INSERT INTO t (k, v) VALUES (?, ?), (?, ?)",
                vec![
                    text("a"),
                    v3::Value::Integer(1),
                    text("b"),
                    v3::Value::Integer(2),
                ],
            )
            .unwrap();
        assert_eq!(ins.changes, 2);
        assert_eq!(ins.last_insert_rowid, 2);
        let sel = db
            .execute_blocking("SELECT k, v FROM t ORDER BY k", vec![])
            .unwrap();
        assert_eq!(sel.columns, vec!["k", "v"]);
        assert_eq!(sel.rows.len(), 2);
        assert_eq!(sel.rows[1].values, vec![text("b"), v3::Value::Integer(2)]);
        assert!(sel.error.is_none());
    }

    #[test]
    fn a_single_conditional_update_is_an_atomic_transition() {
        let db = Database::open(&DatabaseLocation::Memory).unwrap();
        db.execute_blocking("CREATE TABLE s (id TEXT PRIMARY KEY, status TEXT)", vec![])
            .unwrap();
        db.execute_blocking("INSERT INTO s VALUES ('x', 'pending')", vec![])
            .unwrap();
        let upd = "UPDATE s SET status = 'done' WHERE id = 'x' AND status = 'pending' RETURNING id";
        assert_eq!(db.execute_blocking(upd, vec![]).unwrap().rows.len(), 1);
        assert_eq!(db.execute_blocking(upd, vec![]).unwrap().rows.len(), 0);
    }

    #[test]
    fn prepare_errors_are_io_errors() {
        let db = Database::open(&DatabaseLocation::Memory).unwrap();
        assert!(matches!(
            db.execute_blocking("SELEC nonsense", vec![]),
            Err(v3::Error::Io(_))
        ));
    }

    #[test]
    fn only_declared_components_may_open_default() {
        let db = Database::open(&DatabaseLocation::Memory).unwrap();
        let allowed = SqliteState { default: Some(db) };
        assert!(allowed.open("default").is_ok());
        assert!(matches!(
            allowed.open("other"),
            Err(v3::Error::AccessDenied)
        ));
        let denied = SqliteState::default();
        assert!(matches!(
            denied.open("default"),
            Err(v3::Error::AccessDenied)
        ));
    }

    #[test]
    fn file_database_persists_and_creates_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let loc = DatabaseLocation::default_for(dir.path());
        {
            let db = Database::open(&loc).unwrap();
            db.execute_blocking("CREATE TABLE t (x)", vec![]).unwrap();
            db.execute_blocking("INSERT INTO t VALUES (42)", vec![])
                .unwrap();
        }
        let db = Database::open(&loc).unwrap();
        let r = db.execute_blocking("SELECT x FROM t", vec![]).unwrap();
        assert_eq!(r.rows[0].values, vec![v3::Value::Integer(42)]);
        assert!(dir.path().join(".spin/sqlite_db.db").exists());
        assert_eq!(
            DatabaseLocation::parse("memory", dir.path()),
            DatabaseLocation::Memory
        );
    }
}
