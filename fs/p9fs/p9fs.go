package p9fs

import _ "github.com/hugelgupf/p9/p9"
