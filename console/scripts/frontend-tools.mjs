// The console's GraphQL documents checked by the frontend tools other teams use on signoff's
// schema: relay-compiler and graphql-inspector, beside graphql-codegen (npm run codegen).
// `node scripts/frontend-tools.mjs [SRC]` exits non-zero when either refuses a document of SRC
// (default: src/), or when `graphql-inspector diff` finds a breaking change against the released
// schema that the changelog does not announce (scripts/schema-diff.mjs).
//
// relay-compiler reads documents from `graphql` tagged templates, not from the `graphql(…)` calls
// of graphql-codegen's client preset: each document is copied, as written, into a module of a
// scratch Relay project (.frontend-tools/, gitignored) and compiled against the schema there.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, print } from "graphql";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const schema = resolve(root, "../schema.graphql");
const src = resolve(process.argv[2] ?? join(root, "src"));
// scratch (gitignored; Relay skips anything under node_modules), one per run
const work = join(root, ".frontend-tools", String(process.pid));
const bin = (name) => join(root, "node_modules", ".bin", name);

/** Every `graphql(`…`)` document of the console's sources (not the generated src/gql/). */
function documents() {
  const found = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        if (path !== join(src, "gql")) walk(path);
      } else if (/\.(ts|tsx)$/.test(name)) {
        for (const match of readFileSync(path, "utf8").matchAll(/graphql\(\s*`([\s\S]*?)`\s*\)/g)) {
          found.push({ file: relative(root, path), text: match[1] });
        }
      }
    }
  };
  walk(src);
  return found;
}

function relayModules(found) {
  const modules = new Map();
  for (const { file, text } of found) {
    for (const definition of parse(text).definitions) {
      if (!definition.name) throw new Error(`${file}: Relay needs every document named`);
      modules.set(definition.name.value, `graphql\`\n${print(definition)}\n\`;\n`);
    }
  }
  return modules;
}

function run(what, command, args, cwd, refused = "the console's documents") {
  console.log(`== console: ${what}`);
  try {
    execFileSync(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    process.stdout.write(String(error.stdout ?? ""));
    process.stderr.write(String(error.stderr ?? ""));
    console.error(`${what} refused ${refused}`);
    rmSync(work, { recursive: true, force: true });
    process.exit(1);
  }
}

const found = documents();
if (!found.length) throw new Error(`no GraphQL documents found in ${src}`);

// relay-compiler: one module per document in a scratch project, compiled against the schema.
mkdirSync(join(work, "src"), { recursive: true });
mkdirSync(join(work, "generated"));
for (const [name, text] of relayModules(found)) {
  writeFileSync(join(work, "src", `${name}.ts`), text);
}
writeFileSync(
  join(work, "relay.config.json"),
  JSON.stringify({
    src: "./src",
    schema,
    language: "typescript",
    artifactDirectory: "./generated",
    // Relay's generated types want `@alias` on a fragment spread whose type may not match
    // (a Relay-only directive other tools reject); it is about Relay's typings, not the schema.
    featureFlags: { enforce_fragment_alias_where_ambiguous: { kind: "disabled" } },
  }),
);
run("relay-compiler", bin("relay-compiler"), ["relay.config.json"], work);

// graphql-inspector: the documents as written in src/, validated against the schema.
run(
  "graphql-inspector validate",
  bin("graphql-inspector"),
  ["validate", `${src}/**/*.{ts,tsx}`, schema, "--ignore", `${src}/gql/**`, "--onlyErrors"],
  root,
);
rmSync(work, { recursive: true, force: true });

// graphql-inspector diff (scripts/schema-diff.mjs, which says what it found): nothing breaks
// against the released schema unannounced.
run("graphql-inspector diff", process.execPath, [join(root, "scripts", "schema-diff.mjs")], root, "the schema");
