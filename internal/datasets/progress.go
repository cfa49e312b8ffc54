package datasets

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress reports a download's bytes against its total: on a terminal an
// updating line (at most ten times a second), elsewhere a line per 25%.
type progress struct {
	w       io.Writer
	name    string
	total   int64
	n       int64
	tty     bool
	last    time.Time
	quarter int64
	onData  func()
}

func newProgress(w io.Writer, name, url string, total int64, onData func()) *progress {
	p := &progress{w: w, name: name, total: total, onData: onData}
	if w == nil {
		return p
	}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	size := ""
	if total > 0 {
		size = " (" + human(total) + ")"
	}
	fmt.Fprintf(w, "downloading %s%s from %s\n", name, size, url)
	return p
}

func (p *progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.onData != nil {
		p.onData()
	}
	if p.w == nil {
		return len(b), nil
	}
	switch {
	case p.tty:
		if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
			p.last = now
			fmt.Fprintf(p.w, "\r  %s: %s", p.name, p.counts())
		}
	case p.total > 0:
		if q := p.n * 4 / p.total; q > p.quarter && q < 4 {
			p.quarter = q
			fmt.Fprintf(p.w, "  %s: %s\n", p.name, p.counts())
		}
	}
	return len(b), nil
}

// finish writes the final count.
func (p *progress) finish(ok bool) {
	if p.w == nil {
		return
	}
	end := "\n"
	if !ok {
		end = " (failed)\n"
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r  %s: %s%s", p.name, p.counts(), end)
	} else {
		fmt.Fprintf(p.w, "  %s: %s%s", p.name, p.counts(), end)
	}
}

func (p *progress) counts() string {
	if p.total <= 0 {
		return human(p.n)
	}
	return fmt.Sprintf("%s / %s (%d%%)", human(p.n), human(p.total), p.n*100/p.total)
}

func human(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	default:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
}
