// Package aiosfs is the data the daemon carries in its binary, embedded
// from where the repository keeps it (Go's embed reaches only files
// under the embedding package's directory, and testdata/ is at the
// root). Nothing else lives here.
package aiosfs

import _ "embed"

// ThreatWindows and ThreatHoldout are the threat engine's recorded,
// labelled windows (testdata/threat, format in engines/threat/dataset):
// the daemon trains its first model on them when it has none.
var (
	//go:embed testdata/threat/windows.csv
	ThreatWindows []byte
	//go:embed testdata/threat/holdout.csv
	ThreatHoldout []byte
)
