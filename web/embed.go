// Package web holds the browser half of silentrefresh: the ES module
// silentrefresh.js with its TypeScript declarations, and the demo page,
// embedded in the binary and served by Handler.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed index.html app.js style.css favicon.svg silentrefresh.js silentrefresh.d.ts
var files embed.FS

// pageCSP is the Content-Security-Policy of the demo page: everything from
// this origin only, no inline script, no framing.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// routes maps a request path to the embedded file it serves.
var routes = map[string]string{
	"/":                   "index.html",
	"/index.html":         "index.html",
	"/app.js":             "app.js",
	"/style.css":          "style.css",
	"/favicon.svg":        "favicon.svg",
	"/silentrefresh.js":   "silentrefresh.js",
	"/silentrefresh.d.ts": "silentrefresh.d.ts",
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".ts":   "application/typescript; charset=utf-8",
}

// Handler returns the handler that serves the demo page at "/" and its
// assets, the module at "/silentrefresh.js" and its declarations at
// "/silentrefresh.d.ts". Other paths get a JSON 404; methods other than
// GET and HEAD get a JSON 405. Responses carry an ETag and must be
// revalidated, so a new binary's assets are picked up at once.
func Handler() http.Handler {
	assets := make(map[string]asset, len(routes))
	for route, name := range routes {
		body, err := files.ReadFile(name)
		if err != nil {
			panic(fmt.Sprintf("web: embedded %s: %v", name, err)) // the go:embed line and routes disagree
		}
		sum := sha256.Sum256(body)
		assets[route] = asset{
			body:        body,
			contentType: contentTypes[path.Ext(name)],
			etag:        `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.URL.Path]
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "no such page")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(a.contentType, "text/html") {
			h.Set("Content-Security-Policy", pageCSP)
			h.Set("X-Frame-Options", "DENY")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
