import { execa } from "execa";

/** Builds dist/ once, so CLI tests run the program users run. */
export default async function setup(): Promise<void> {
  await execa("npm", ["run", "build", "--silent"], { stdio: "inherit" });
}
