/** Exit codes of the programs. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
/** Bad command line or bad config file. */
export const EXIT_USAGE = 2;

/** A usage or config problem that should end a program with {@link EXIT_USAGE} and this message. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
