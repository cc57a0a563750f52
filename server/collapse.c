/* collapse: counting attempts lost to non-finite training; see collapse.h. */
#include "server/collapse.h"

void collapse_attempt(collapse *c, int new_round)
{
    c->nonfinite = 0;
    c->candidate = 0;
    if (new_round) c->lost = 0;
}

void collapse_client(collapse *c)
{
    c->nonfinite++;
}

void collapse_candidate(collapse *c)
{
    c->candidate = 1;
}

int collapse_abandoned(collapse *c, int folded, int owed, int min_clients)
{
    int lost = c->candidate || (c->nonfinite > 0 && folded + owed + c->nonfinite >= min_clients);
    if (!lost) {
        /* Lost for another reason: the run is not shown to be stuck. */
        c->lost = 0;
        return 0;
    }
    c->lost++;
    return c->max_attempts > 0 && c->lost >= c->max_attempts;
}
