// esbuild settings shared by the bundles and the test build.
//
// binaryOnly: the SDK speaks gRPC-Web in the binary format only (connect-web's default,
// and what Herald's servers expect), yet connect's serializer keeps a reference to
// protobuf-es's JSON codec for the JSON format. Replacing the two JSON modules with stubs
// that throw takes about 9 KiB off the gzipped bundle. Nothing else in the bundle uses
// them (Struct fields are converted by the reflection code); a stub that is reached
// throws an error saying so, and the transport tests run against the same stubs.

export const binaryOnly = {
  name: "herald-binary-only",
  setup(build) {
    build.onLoad({ filter: /[\\/]@bufbuild[\\/]protobuf[\\/]dist[\\/]esm[\\/](from|to)-json\.js$/ }, (args) => {
      const names = /from-json\.js$/.test(args.path)
        ? ["fromJson", "fromJsonString", "mergeFromJson", "mergeFromJsonString", "enumFromJson", "isEnumJson"]
        : ["toJson", "toJsonString", "enumToJson"];
      const contents =
        `function unsupported(){throw new Error("Herald: the protobuf JSON format is not included in this bundle")}\n` +
        names.map((n) => `export const ${n} = unsupported;`).join("\n");
      return { contents, loader: "js" };
    });
  },
};

export const common = {
  bundle: true,
  target: "es2020",
  charset: "utf8",
  logLevel: "warning",
  plugins: [binaryOnly],
};
