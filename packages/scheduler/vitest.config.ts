import { vitestPreset } from "@vmcp-keepalive/testkit/vitest-preset";

export default vitestPreset();
