package rest

// BenchRecord is the record the package's benchmarks answer.
var BenchRecord = benchRecord
