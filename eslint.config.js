// Flat config shared by every package (each runs `eslint src test` from its own directory).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config({ ignores: ["**/dist/**", "**/node_modules/**", "**/*.js", "!eslint.config.js"] }, js.configs.recommended, ...tseslint.configs.recommended, {
  rules: {
    "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    "@typescript-eslint/no-non-null-assertion": "off",
    "no-empty": ["error", { allowEmptyCatch: true }],
    "no-control-regex": "off",
  },
});
