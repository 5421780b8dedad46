// Command protogen compiles the .proto files under proto/ and runs the pinned Go code generators
// on them. It replaces protoc so that generation needs nothing but the go command: the compiler
// (bufbuild/protocompile) and the plugins (protoc-gen-go, protoc-gen-go-grpc, and grpc-gateway's
// protoc-gen-grpc-gateway and protoc-gen-openapiv2) are all pinned in go.mod, and the same inputs
// always give the same output, which `make proto-check` relies on.
//
// The google.api.http annotations and the OpenAPI options come from the compiled descriptors in
// the pinned google.golang.org/genproto and grpc-gateway modules rather than from copied .proto
// files, so that there is one version of them, the one the generated code links against.
//
// Usage: protogen -I proto -plugin-dir BIN -out proto FILE.proto...
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/linker"
	openapiv2 "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2/options"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
}

func run() error {
	importPath := flag.String("I", "proto", "import root of the .proto files")
	pluginDir := flag.String("plugin-dir", "bin", "directory holding the protoc-gen-* plugins")
	out := flag.String("out", "proto", "output root")
	flag.Parse()
	files := flag.Args()
	if len(files) == 0 {
		return fmt.Errorf("name at least one .proto file, relative to -I")
	}

	compiler := protocompile.Compiler{
		Resolver: protocompile.CompositeResolver{
			protocompile.WithStandardImports(&protocompile.SourceResolver{
				ImportPaths: []string{*importPath},
			}),
			protocompile.ResolverFunc(googleAPI),
		},
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := compiler.Compile(context.Background(), files...)
	if err != nil {
		return err
	}

	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate:  files,
		CompilerVersion: &pluginpb.Version{Major: proto.Int32(0), Minor: proto.Int32(14), Patch: proto.Int32(1)},
	}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		req.ProtoFile = append(req.ProtoFile, protodesc.ToFileDescriptorProto(fd))
	}
	for _, f := range compiled {
		add(f.(linker.Result))
	}
	for _, name := range files {
		for _, fdp := range req.ProtoFile {
			if fdp.GetName() == name {
				req.SourceFileDescriptors = append(req.SourceFileDescriptors, proto.Clone(fdp).(*descriptorpb.FileDescriptorProto))
			}
		}
	}

	for _, p := range plugins {
		req.Parameter = proto.String(p.param)
		if err := runPlugin(filepath.Join(*pluginDir, p.name), req, *out); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

// plugins are run in order, each with its parameter. The gateway and the OpenAPI description
// use the proto field names (snake_case) in JSON, so that the names in an error message
// ("record.kind") are the names a REST client sends.
var plugins = []struct{ name, param string }{
	{"protoc-gen-go", "paths=source_relative"},
	{"protoc-gen-go-grpc", "paths=source_relative"},
	{"protoc-gen-grpc-gateway", "paths=source_relative"},
	{"protoc-gen-openapiv2", "allow_merge=true,merge_file_name=knooppunt/v1/knooppunt,json_names_for_fields=false,disable_default_responses=false"},
}

// googleAPI resolves the google/api files the http annotations need, and the OpenAPI options
// of protoc-gen-openapiv2, from their compiled descriptors.
func googleAPI(path string) (protocompile.SearchResult, error) {
	switch path {
	case "protoc-gen-openapiv2/options/annotations.proto":
		return protocompile.SearchResult{Desc: openapiv2.File_protoc_gen_openapiv2_options_annotations_proto}, nil
	case "protoc-gen-openapiv2/options/openapiv2.proto":
		return protocompile.SearchResult{Desc: openapiv2.File_protoc_gen_openapiv2_options_openapiv2_proto}, nil
	case "google/api/annotations.proto":
		return protocompile.SearchResult{Desc: annotations.File_google_api_annotations_proto}, nil
	case "google/api/http.proto":
		return protocompile.SearchResult{Desc: annotations.File_google_api_http_proto}, nil
	}
	return protocompile.SearchResult{}, os.ErrNotExist
}

func runPlugin(path string, req *pluginpb.CodeGeneratorRequest, out string) error {
	in, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	var stdout bytes.Buffer
	cmd := exec.Command(path)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return err
	}
	var resp pluginpb.CodeGeneratorResponse
	if err := proto.Unmarshal(stdout.Bytes(), &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return fmt.Errorf("%s", resp.GetError())
	}
	for _, f := range resp.File {
		dst := filepath.Join(out, f.GetName())
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, []byte(f.GetContent()), 0o644); err != nil {
			return err
		}
	}
	return nil
}
