// Package results holds the bench's figures and writes them: a Markdown
// table (printed and saved as results.md), results.json and the PNG plots.
package results
