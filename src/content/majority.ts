/** A majority of n: any two majorities share a member, so a read of one sees a write to the other. */
export function majorityQuorum(n: number): number {
  return Math.floor(n / 2) + 1;
}
