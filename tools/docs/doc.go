// Package docs checks the documentation: every relative link in README.md
// and docs/ must resolve to an existing file, and every #anchor to a
// heading in it, so the teaching pages never point at code that moved.
package docs
