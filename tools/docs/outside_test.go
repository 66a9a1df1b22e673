package docs

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Citations of documents that are not in the repository: a page or a
// comment must say what the reader needs instead of pointing elsewhere.
var outside = regexp.MustCompile(`(?i)\bDESIGN\.md\b|\bthe brief\b|\bthe seed's\b|\bthe seed (states|says|lists|asks)\b|\bthe issue\b`)

func TestNoCitationsOutsideTheRepository(t *testing.T) {
	root := repoRoot(t)
	for _, p := range readPages(t, root) {
		for i, line := range strings.Split(p.text, "\n") {
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d: cites %q, which is not in the repository: say what the reader needs here", p.rel, i+1, m)
			}
		}
	}
	// Go comments too: a package comment is documentation.
	fset := token.NewFileSet()
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "node_modules") {
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		switch filepath.Ext(path) {
		case ".sh", ".cedar", ".yml", ".yaml", ".tmpl", ".html", ".sql":
			// Configuration and scripts: every line is read by someone.
			b, err := os.ReadFile(path)
			if err == nil {
				for i, line := range strings.Split(string(b), "\n") {
					if m := outside.FindString(line); m != "" {
						t.Errorf("%s:%d: cites %q, which is not in the repository", rel, i+1, m)
					}
				}
			}
			return nil
		case ".go":
		default:
			return nil
		}
		if strings.HasSuffix(path, "outside_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil
		}
		for _, cg := range f.Comments {
			if m := outside.FindString(cg.Text()); m != "" {
				t.Errorf("%s:%d: comment cites %q, which is not in the repository", rel, fset.Position(cg.Pos()).Line, m)
			}
		}
		return nil
	})
}
