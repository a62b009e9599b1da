// Fails unless two files are byte for byte the same: the checked-in types
// must be what openapi-typescript makes of the document now.
import { readFileSync } from "node:fs";

const [checkedIn, fresh] = process.argv.slice(2);
if (readFileSync(checkedIn, "utf8") !== readFileSync(fresh, "utf8")) {
  console.error(`${checkedIn} is out of date: run \`npm run generate\` and commit it`);
  process.exit(1);
}
