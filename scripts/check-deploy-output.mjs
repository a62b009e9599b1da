// Checks a `vercel build` output (.vercel/output) against the project it was
// built from: one executable function per api/*.rs with the maxDuration
// vercel.json gives it, the crons of vercel.json, and static files that are
// exactly public/'s. Writes "<route> <executable>" per function for the
// caller to start. Usage: node check-deploy-output.mjs <app dir> <list file>
import { readFileSync, readdirSync, statSync, writeFileSync, existsSync } from "node:fs";
import { join, relative } from "node:path";
import { isDeepStrictEqual } from "node:util";

const [app, listFile] = process.argv.slice(2);
const output = join(app, ".vercel", "output");
const vercelJson = JSON.parse(readFileSync(join(app, "vercel.json"), "utf8"));
let failures = 0;
let passed = 0;

function check(ok, what, detail = "") {
  if (ok) {
    passed += 1;
    console.log(`check-deploy: ok   ${what}`);
  } else {
    failures += 1;
    console.error(`check-deploy: FAIL ${what}${detail ? `: ${detail}` : ""}`);
  }
}

function files(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true })
    .map(String)
    .filter((path) => statSync(join(dir, path)).isFile())
    .sort();
}

// The crons, exactly as vercel.json has them.
const config = JSON.parse(readFileSync(join(output, "config.json"), "utf8"));
const byPath = (a, b) => a.path.localeCompare(b.path);
check(
  isDeepStrictEqual([...(config.crons ?? [])].sort(byPath), [...vercelJson.crons].sort(byPath)),
  `config.json has the ${vercelJson.crons.length} crons of vercel.json`,
  JSON.stringify(config.crons),
);

// One executable function per api/*.rs, and nothing else.
const sources = files(join(app, "api")).filter((path) => path.endsWith(".rs"));
const expected = sources.map((path) => `api/${path.replace(/\.rs$/, "")}.func`).sort();
const built = readdirSync(join(output, "functions"), { recursive: true })
  .map(String)
  .filter((path) => path.endsWith(".func"))
  .sort();
check(
  isDeepStrictEqual(built, expected),
  `one function per api/*.rs (${expected.length})`,
  `built ${JSON.stringify(built)}`,
);

const list = [];
for (const source of sources) {
  const func = join(output, "functions", `api/${source.replace(/\.rs$/, "")}.func`);
  const route = `/api/${source.replace(/\.rs$/, "")}`;
  const vcConfigPath = join(func, ".vc-config.json");
  if (!existsSync(vcConfigPath)) {
    check(false, `${route} was built`, `no ${relative(app, vcConfigPath)}`);
    continue;
  }
  const vc = JSON.parse(readFileSync(vcConfigPath, "utf8"));
  const wanted = vercelJson.functions?.[`api/${source}`]?.maxDuration;
  check(
    vc.runtime === "executable" && vc.handler === "executable",
    `${route} is an executable function`,
    `runtime ${vc.runtime}, handler ${vc.handler}`,
  );
  check(vc.maxDuration === wanted, `${route} has maxDuration ${wanted}`, `got ${vc.maxDuration}`);
  // The CLI may leave the binary where cargo put it and point at it from
  // filePathMap (relative to the project) instead of copying it in.
  const mapped = vc.filePathMap?.[vc.handler];
  const executable = mapped ? join(app, mapped) : join(func, vc.handler);
  const mode = existsSync(executable) ? statSync(executable).mode : 0;
  check((mode & 0o111) !== 0, `${route} ships its binary`, relative(app, executable));
  list.push(`${route} ${executable}`);
}
writeFileSync(listFile, list.join("\n") + "\n");

// Static output: public/'s files and nothing more (no source, no migrations).
const publicFiles = files(join(app, "public"));
const staticFiles = files(join(output, "static"));
const extra = staticFiles.filter((path) => !publicFiles.includes(path));
const missing = publicFiles.filter((path) => !staticFiles.includes(path));
check(
  extra.length === 0 && missing.length === 0,
  `static output is exactly public/ (${publicFiles.length} files)`,
  `not from public/: ${JSON.stringify(extra.slice(0, 20))}${extra.length > 20 ? ` and ${extra.length - 20} more` : ""}; missing: ${JSON.stringify(missing)}`,
);
for (const path of publicFiles.filter((path) => staticFiles.includes(path))) {
  check(
    readFileSync(join(app, "public", path)).equals(readFileSync(join(output, "static", path))),
    `static ${path} is public/${path}`,
  );
}

console.log(`check-deploy: output checks: ${passed} passed, ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
