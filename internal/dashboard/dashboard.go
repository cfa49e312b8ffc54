// Package dashboard holds the web dashboard's built assets (HTML, the
// esbuild bundle of web/dashboard, CSS), embedded in the binary. The API
// (api/dashboard.go) serves them at / and decides who may load them; this
// package only knows the files.
//
// The assets are built from web/dashboard by scripts/build-dashboard.sh
// and committed, so `go build` needs no npm; scripts/build-dashboard.sh
// --check rebuilds them from the lockfile and fails when the result differs
// from what is committed.
package dashboard

import (
	"embed"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Files are the built assets: index.html, login.html and assets/.
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // dist is embedded at build time; a missing one fails the build
	}
	return sub
}

// Page returns one of the HTML pages ("index.html", "login.html").
func Page(name string) []byte {
	b, err := fs.ReadFile(Files(), name)
	if err != nil {
		panic("dashboard: " + name + " is not embedded: " + err.Error())
	}
	return b
}
