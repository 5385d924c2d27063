// Package layout holds only a test: it fails when an import arrow between
// bansd's packages points the wrong way (see DESIGN.md, "Data flow").
package layout
