// Package webmesh holds the browser peer of the knowledge mesh: the page
// the API serves at /mesh/ and its bundled js-libp2p node (built from
// web/mesh by scripts/build-mesh.sh; the bundle is committed so that the Go
// build needs no npm).
package webmesh

import (
	"embed"
	"io/fs"
)

//go:embed dist/index.html dist/mesh.js
var dist embed.FS

// FS is the page: index.html and mesh.js at its root.
func FS() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embedded directory exists: a build error otherwise
	}
	return sub
}
