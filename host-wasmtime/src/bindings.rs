//! Host bindings for the Spin interfaces, generated from the WIT in `wit/`.
//!
//! WIT `async func`s become `Accessor`-based functions (`HostWithStore`,
//! `HostConnectionWithStore`): they clone what they need from the store inside
//! `accessor.with(..)` and await I/O outside it, so one guest task waiting on
//! Redis does not stall the instance's other tasks.

wasmtime::component::bindgen!({
    path: "wit",
    world: "dock:host/spin-imports",
    imports: { default: async },
    with: {
        "spin:redis/redis.connection": crate::redis::RedisConnection,
        "spin:sqlite/sqlite.connection": crate::sqlite::SqliteConnection,
    },
    additional_derives: [PartialEq],
    anyhow: true,
});

pub use spin::redis::redis as redis3;
pub use spin::sqlite::sqlite as sqlite3;
pub use spin::variables::variables as variables3;
