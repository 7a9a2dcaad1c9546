// Package docs holds the project's documentation; its test checks that a
// person who clones only this repository finds everything README.md and
// docs/*.md link to.
package docs

import (
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repo is the repository root, relative to this directory.
const repo = ".."

// A link is one link target in a Markdown file, with its line.
type link struct {
	file   string // repository-relative, e.g. docs/mem.md
	line   int
	target string
	own    map[string]bool // the heading anchors of file itself
}

var (
	// [text](target "title") and ![alt](target); target may be <...>.
	inlineLink = regexp.MustCompile(`!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+"[^"]*")?\s*\)`)
	// [label]: target
	refDef = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)`)
	// <https://...>
	autoLink = regexp.MustCompile(`<((?:https?|ftp|file|mailto):[^>\s]+)>`)
	// `code`, dropped before looking for links in a line
	codeSpan = regexp.MustCompile("`+[^`]*`+")
)

// links returns every link target in a Markdown text, outside fenced
// and indented code blocks and code spans.
func links(file, text string) []link {
	var out []link
	own := anchors(text)
	fence := ""
	prevBlank := true
	inIndented := false
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		// An indented code block starts after a blank line and lasts
		// while lines are indented (or blank).
		indented := strings.HasPrefix(line, "    ") || strings.HasPrefix(line, "\t")
		if indented && (prevBlank || inIndented) {
			inIndented = true
			prevBlank = false
			continue
		}
		if trimmed == "" {
			prevBlank = true
			continue
		}
		inIndented, prevBlank = false, false
		line = codeSpan.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			out = append(out, link{file, i + 1, strings.Trim(m[1], "<>"), own})
		}
		if m := refDef.FindStringSubmatch(line); m != nil {
			out = append(out, link{file, i + 1, strings.Trim(m[1], "<>"), own})
		}
		for _, m := range autoLink.FindAllStringSubmatch(line, -1) {
			out = append(out, link{file, i + 1, m[1], own})
		}
	}
	return out
}

// anchors are the GitHub heading anchors of a Markdown text.
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fence := false
	for _, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "```") || strings.HasPrefix(t, "~~~") {
			fence = !fence
			continue
		}
		if fence || !strings.HasPrefix(t, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(t, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[a+"-"+string(rune('0'+n))] = true
		}
		seen[a]++
		out[a] = true
	}
	return out
}

// checkLink says what is wrong with l, or "". Relative links must name a
// file or directory inside the repository (and a heading that exists,
// for #fragments into Markdown); links that leave the repository must be
// https to a public host.
func checkLink(l link) string {
	u, err := url.Parse(l.target)
	if err != nil {
		return "unparsable link: " + err.Error()
	}
	switch u.Scheme {
	case "https":
		host := u.Hostname()
		if host == "" {
			return "https link without a host"
		}
		if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified()) {
			return "link to a private address: readers cannot reach it"
		}
		if host == "localhost" || strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".local") || strings.HasSuffix(host, ".internal") || !strings.Contains(host, ".") {
			return "link to a local host name: readers cannot reach it"
		}
		return ""
	case "":
	default:
		return "link scheme " + u.Scheme + ": only https links may leave the repository"
	}
	if u.Host != "" {
		return "protocol-relative link: use https"
	}
	p := u.Path
	if p == "" { // #fragment in the same file
		if u.Fragment != "" && !l.own[strings.ToLower(u.Fragment)] {
			return "no heading for #" + u.Fragment + " in " + l.file
		}
		return ""
	}
	if strings.HasPrefix(p, "/") {
		return "absolute path: it names the reader's file system, not the repository; use a relative link"
	}
	rel := path.Clean(path.Join(path.Dir(l.file), p))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "relative link escapes the repository (" + rel + "): a clone of this repository alone does not have it"
	}
	st, err := os.Stat(filepath.Join(repo, filepath.FromSlash(rel)))
	if err != nil {
		return "no such file in the repository: " + rel
	}
	if u.Fragment != "" && !st.IsDir() && strings.HasSuffix(rel, ".md") {
		return checkAnchor(rel, u.Fragment)
	}
	return ""
}

func checkAnchor(file, frag string) string {
	if frag == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(file)))
	if err != nil {
		return err.Error()
	}
	if !anchors(string(b))[strings.ToLower(frag)] {
		return "no heading for #" + frag + " in " + file
	}
	return ""
}

// TestLinks checks every link in README.md and docs/*.md.
func TestLinks(t *testing.T) {
	files := []string{"README.md"}
	mds, _ := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	for _, m := range mds {
		files = append(files, "docs/"+filepath.Base(m))
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links(f, string(b)) {
			n++
			if why := checkLink(l); why != "" {
				t.Errorf("%s:%d: %s: %s", l.file, l.line, l.target, why)
			}
		}
	}
	if n < 5 {
		t.Fatalf("found only %d links in %v: the parser is broken", n, files)
	}
	t.Logf("%d links in %d files", n, len(files))
}

// TestLinkChecker: the checker catches what it is for, on made-up links.
func TestLinkChecker(t *testing.T) {
	md := strings.Join([]string{
		"# Title",
		"## A section: with punctuation!",
		"[ok](docs/security.md) [ok dir](docs/) [ok anchor](#a-section-with-punctuation) ![img](docs/mem.md)",
		"[up](../shared/ARCHITECTURE.md) [abs](/work/shared/datasets) [gone](docs/nothing.md)",
		"[plain http](http://example.com/) [file](file:///etc/passwd) [local](https://localhost:8080/x) [lan](https://192.168.1.4/)",
		"[ok https](https://github.com/prometheus/client_golang) <https://example.org/a> [bad anchor](docs/security.md#no-such-heading)",
		"`[in code](../outside.md)` and",
		"",
		"    [indented code](../outside.md)",
		"```",
		"[fenced](../outside.md)",
		"```",
		"[ref]: ../../elsewhere.md",
	}, "\n")
	bad := map[string]bool{}
	var good []string
	for _, l := range links("README.md", md) {
		if checkLink(l) != "" {
			bad[l.target] = true
		} else {
			good = append(good, l.target)
		}
	}
	for _, want := range []string{"../shared/ARCHITECTURE.md", "/work/shared/datasets", "docs/nothing.md", "http://example.com/",
		"file:///etc/passwd", "https://localhost:8080/x", "https://192.168.1.4/", "docs/security.md#no-such-heading", "../../elsewhere.md"} {
		if !bad[want] {
			t.Errorf("%s not flagged", want)
		}
	}
	if len(bad) != 9 {
		t.Errorf("flagged %d links, want 9: %v", len(bad), bad)
	}
	want := []string{"docs/security.md", "docs/", "#a-section-with-punctuation", "docs/mem.md", "https://github.com/prometheus/client_golang", "https://example.org/a"}
	if strings.Join(good, " ") != strings.Join(want, " ") {
		t.Errorf("accepted %q, want %q", good, want)
	}
}
