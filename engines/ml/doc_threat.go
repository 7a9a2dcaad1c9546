// Package ml holds learning code shared by the engines. The files named
// here are the threat engine's: a robust streaming baseline (robust.go),
// an isolation forest (iforest.go), a random-forest classifier that
// explains its answers (classify.go) and the signed model file format
// (modelfile.go). Everything is deterministic under a seed: the same
// data and seed give the same model, byte for byte once saved.
//
// Models are data (JSON numbers and strings), never code: loading one
// decodes JSON into fixed Go structs and checks its shape; nothing in a
// model file is executed or interpreted as a program.
package ml
