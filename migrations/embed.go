// Package migrations holds the numbered PostgreSQL migrations
// (NNNN_name.up.sql / NNNN_name.down.sql), embedded into the binary and
// applied by `hyperspace migrate` and `hyperspace dev` (see internal/store).
package migrations

import "embed"

// FS holds every *.sql file of this folder.
//
//go:embed *.sql
var FS embed.FS
