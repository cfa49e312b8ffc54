package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/hyperspace-ai/hyperspace/internal/webmesh"
	"github.com/hyperspace-ai/hyperspace/p2p"
)

// The browser peer (issue 13): GET /mesh/ serves a page whose js-libp2p
// node dials this process's P2P node over WebSockets and joins the research
// topics; GET /api/v1/mesh/bootstrap tells it where to dial.
//
// The page itself is static and open (it holds no data; a browser cannot
// send a bearer token when navigating): it asks for a read token in its UI
// and sends it to the bootstrap endpoint, which needs scope read like every
// GET of /api/v1 (open under --public-reads).

// MeshPagePath is the route of the browser peer's page and its script.
const MeshPagePath = "/mesh/*filepath"

// meshPageCSP confines the page to its own script and to dialling
// WebSockets: it runs a libp2p node and nothing else.
const meshPageCSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) meshRoutes(r *gin.Engine, v1 *gin.RouterGroup) {
	files := http.FileServer(http.FS(webmesh.FS()))
	r.GET(MeshPagePath, func(c *gin.Context) {
		c.Header("Content-Security-Policy", meshPageCSP)
		c.Header("X-Content-Type-Options", "nosniff")
		c.Header("Cache-Control", "no-cache")
		req := c.Request.Clone(c.Request.Context())
		req.URL.Path = c.Param("filepath") // "/", "/mesh.js"
		files.ServeHTTP(c.Writer, req)
	})
	v1.GET("/mesh/bootstrap", s.meshBootstrap)
}

// MeshBootstrap is what a browser peer needs to join: the node's WebSocket
// multiaddrs (with /p2p/<id>), the research topics, and the identity
// puzzle its key must pass.
type MeshBootstrap struct {
	PeerID string   `json:"peerId"`
	Addrs  []string `json:"addrs"`
	// Domains and Topics: the research domains the node gossips about and
	// their topics (p2p.TopicForDomain), in the same order.
	Domains []string `json:"domains"`
	Topics  []string `json:"topics"`
	// PowDifficulty is the static identity puzzle the node enforces: the
	// tab's libp2p key needs this many leading zero bits of
	// SHA-256(SHA-256(protobuf public key)).
	PowDifficulty int `json:"powDifficulty"`
}

func (s *Server) meshBootstrap(c *gin.Context) {
	if s.noNode(c) {
		return
	}
	n := s.Node.P2P
	b := MeshBootstrap{PeerID: n.ID().String(), Addrs: []string{}, Domains: n.Domains(), Topics: []string{}, PowDifficulty: n.PoWDifficulty()}
	for _, a := range n.WebSocketAddrs() {
		b.Addrs = append(b.Addrs, a.String())
	}
	if len(b.Addrs) == 0 {
		s.writeErr(c, newErr(http.StatusNotFound, CodeNotFound, "this node does not listen for browser peers; start it with --ws-listen "+p2p.DefaultWebSocketListenAddr))
		return
	}
	for _, d := range b.Domains {
		b.Topics = append(b.Topics, p2p.TopicForDomain(d))
	}
	c.JSON(http.StatusOK, b)
}
