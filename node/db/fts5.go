//go:build !sqlite_fts5

package db

// The full-text index (text.go) needs SQLite's FTS5, which go-sqlite3 compiles in only with the
// sqlite_fts5 build tag. Without it every database would fail to open, so the build stops here:
// build and test with -tags sqlite_fts5 (the Makefile sets GOFLAGS to do so).
var _ = build_with_tags_sqlite_fts5
