package fs

import (
	"context"
	"io"
)

// ReadFile opens path in the tree at root as c, reads it to the end by
// offset, as an adapter does, and closes it. Engines' tests and in-process
// callers use it to see a file exactly as a client would.
func ReadFile(ctx context.Context, root Dir, path string, c Caller) ([]byte, error) {
	h, err := openFile(ctx, root, path, c, OREAD)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var out []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := h.Read(ctx, buf, int64(len(out)))
		if err != nil && err != io.EOF {
			return out, err
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
	}
}

// WriteFile opens path for writing as c, writes data in one write and
// closes it (flushing a ctl's last line), returning the first error, as
// `echo data > path` does.
func WriteFile(ctx context.Context, root Dir, path string, c Caller, data []byte) error {
	h, err := openFile(ctx, root, path, c, OWRITE)
	if err != nil {
		return err
	}
	_, werr := h.Write(ctx, data, 0)
	var ferr error
	if f, ok := h.(Flusher); ok && werr == nil {
		ferr = f.Flush(ctx)
	}
	h.Close()
	if werr != nil {
		return werr
	}
	return ferr
}

func openFile(ctx context.Context, root Dir, path string, c Caller, m OpenMode) (Handle, error) {
	n, err := Walk(root, path)
	if err != nil {
		return nil, err
	}
	f, ok := n.(File)
	if !ok {
		return nil, ErrIsDir
	}
	return f.Open(ctx, c, m)
}
