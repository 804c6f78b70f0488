/** A bad combination of flags or inputs, reported as `nexgrad <command>: error: ...` (exit code 2). */
import { NexgradError } from '../../ir/errors.js';

export class UsageError extends NexgradError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
