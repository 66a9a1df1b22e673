package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The names a page cites in `code spans` and code blocks: each must exist in
// the tree, so a renamed function, target, variable or metric fails the build
// instead of teaching something that is no longer there.
var (
	codeSpan   = regexp.MustCompile("`([^`\n]+)`")
	makeTarget = regexp.MustCompile(`\bmake ([a-z][a-z0-9-]*)\b`)
	envVar     = regexp.MustCompile(`\bSTRATA_[A-Z0-9_]*[A-Z0-9]\b`)
	metricName = regexp.MustCompile(`\bstrata_[a-z0-9_]*[a-z0-9]\b`)
	goIdent    = regexp.MustCompile(`^\*?([a-z][a-z0-9]*)\.([A-Z][A-Za-z0-9]*)(?:\.([A-Z][A-Za-z0-9]*))?(?:\(.*\))?$`)
	repoPath   = regexp.MustCompile(`^(?:\.\./)*((?:services|libs|loadtest|tools|deploy|docs)/[A-Za-z0-9_./*<>-]+)`)
)

// page is one Markdown file with its repository-relative name.
type page struct {
	rel, text string
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// readPages returns README.md and every page under docs/.
func readPages(t *testing.T, root string) []page {
	t.Helper()
	names := []string{filepath.Join(root, "README.md")}
	_ = filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			names = append(names, p)
		}
		return nil
	})
	var pages []page
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, n)
		pages = append(pages, page{rel, string(b)})
	}
	return pages
}

// codeCorpus is every non-Markdown source file of the tree, concatenated:
// what a cited variable or metric name is looked up in.
func codeCorpus(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if d.IsDir() {
			if p == root {
				return nil
			}
			if strings.HasPrefix(name, ".") || name == "node_modules" || p == filepath.Join(root, "out") || p == filepath.Join(root, "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(name) {
		case ".go", ".sh", ".yml", ".yaml", ".env", ".json", ".cedar", ".sql", ".cql", ".conf", ".tmpl", ".html", ".py":
		default:
			if name != "Makefile" && !strings.HasSuffix(name, "Dockerfile") && name != "run" {
				return nil
			}
		}
		data, err := os.ReadFile(p)
		if err == nil {
			b.Write(data)
			b.WriteByte('\n')
		}
		return nil
	})
	return b.String()
}

// goDecls maps a package name to every name declared at its top level and
// every method name, across all packages of that name in the tree.
func goDecls(t *testing.T, root string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	fset := token.NewFileSet()
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil
		}
		pkg := f.Name.Name
		if out[pkg] == nil {
			out[pkg] = map[string]bool{}
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				out[pkg][d.Name.Name] = true
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						out[pkg][s.Name.Name] = true
						// Fields and interface methods: `pkg.Type.Field` is cited too.
						ast.Inspect(s.Type, func(n ast.Node) bool {
							if f, ok := n.(*ast.Field); ok {
								for _, n := range f.Names {
									out[pkg][n.Name] = true
								}
							}
							return true
						})
					case *ast.ValueSpec:
						for _, n := range s.Names {
							out[pkg][n.Name] = true
						}
					}
				}
			}
		}
		return nil
	})
	return out
}

// spans returns the text of every code span and code block of a page.
func spans(text string) []string {
	var out []string
	out = append(out, fence.FindAllString(text, -1)...)
	for _, m := range codeSpan.FindAllStringSubmatch(fence.ReplaceAllString(text, ""), -1) {
		out = append(out, m[1])
	}
	return out
}

func makeTargets(t *testing.T, root string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`).FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = true
	}
	return out
}

func TestCitedNamesExist(t *testing.T) {
	root := repoRoot(t)
	pages := readPages(t, root)
	corpus := codeCorpus(t, root)
	decls := goDecls(t, root)
	targets := makeTargets(t, root)
	counts := map[string]int{}
	for _, p := range pages {
		for _, s := range spans(p.text) {
			for _, m := range makeTarget.FindAllStringSubmatch(s, -1) {
				counts["make target"]++
				if !targets[m[1]] {
					t.Errorf("%s: `make %s`: no such target in the Makefile", p.rel, m[1])
				}
			}
			for _, v := range envVar.FindAllString(s, -1) {
				counts["environment variable"]++
				if !strings.Contains(corpus, v) {
					t.Errorf("%s: %s: no code reads or sets this variable", p.rel, v)
				}
			}
			for _, v := range metricName.FindAllString(s, -1) {
				counts["metric"]++
				if !metricExists(corpus, v) {
					t.Errorf("%s: metric %s: not defined in the code", p.rel, v)
				}
			}
			if m := goIdent.FindStringSubmatch(strings.TrimSpace(s)); m != nil {
				names, known := decls[m[1]]
				if !known {
					continue // not a package of this tree (json.Marshal, http.Handler ...)
				}
				counts["Go identifier"]++
				if !names[m[2]] || (m[3] != "" && !names[m[3]]) {
					t.Errorf("%s: `%s`: package %s declares no such name", p.rel, s, m[1])
				}
			}
			if m := repoPath.FindStringSubmatch(strings.TrimSpace(s)); m != nil && !strings.ContainsAny(m[1], "*<>") {
				counts["file path"]++
				path := strings.TrimSuffix(strings.SplitN(m[1], ":", 2)[0], ".")
				if _, err := os.Stat(filepath.Join(root, path)); err != nil {
					t.Errorf("%s: `%s`: no such file or folder", p.rel, m[1])
				}
			}
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%4d %s citations checked", counts[k], k)
	}
	for _, k := range []string{"make target", "environment variable", "metric", "Go identifier", "file path"} {
		if counts[k] < 5 {
			t.Errorf("only %d %s citations found: the check is not reading the pages", counts[k], k)
		}
	}
}

// metricExists accepts a metric a page cites by its full exposition name:
// a histogram's _bucket/_count/_sum series and a counter's _total suffix are
// added by the client library, not written in the code.
func metricExists(corpus, name string) bool {
	if strings.Contains(corpus, `"`+name+`"`) || strings.Contains(corpus, name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum", "_total"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && strings.Contains(corpus, base) {
			return true
		}
	}
	return false
}
