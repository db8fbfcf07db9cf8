//! PostgreSQL sink.
