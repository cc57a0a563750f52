/* sopt: server optimizers over the aggregated pseudo-gradient (Reddi et
 * al. 2021, "Adaptive Federated Optimization", Algorithm 2; FedAvgM from
 * Hsu et al. 2019).
 *
 * The strategy's aggregate D (strategy.h: the mean of new - global) is the
 * pseudo-gradient; with x the global shared set, per coordinate:
 *   sgd      x += lr * D                        (lr 1: plain FedAvg)
 *   avgm     m = momentum * m + D;  x += lr * m
 *   adagrad  m = b1*m + (1-b1)*D;  v = v + D^2
 *   yogi     m = b1*m + (1-b1)*D;  v = v - (1-b2) * D^2 * sign(v - D^2)
 *   adam     m = b1*m + (1-b1)*D;  v = b2*v + (1-b2)*D^2
 *            (these three: x += lr * m / (sqrt(v) + tau))
 * m starts at 0 and v at tau^2, as the paper's v_{-1} >= tau^2; there is no
 * bias correction, as in the paper. The state (m, v) is kept in double and
 * saved with each committed model (sopt_state), so a resumed run continues
 * bit for bit.
 *
 * A step is computed into a pending state and applied by sopt_accept once
 * the round is committed, so a round that fails to commit leaves the
 * optimizer as it was.
 */
#ifndef SEFL_SOPT_H
#define SEFL_SOPT_H

#include <stddef.h>

enum { SOPT_SGD, SOPT_AVGM, SOPT_ADAGRAD, SOPT_YOGI, SOPT_ADAM };

#define SOPT_NAME_MAX 160

typedef struct {
    int kind;                   /* SOPT_* */
    double lr;                  /* --server-lr (default 1) */
    double momentum;            /* --server-momentum, avgm (default 0.9) */
    double beta1, beta2;        /* --beta1 (0.9), --beta2 (0.99) */
    double tau;                 /* --tau (1e-3) */
} sopt_spec;

typedef struct sopt sopt;

void sopt_spec_default(sopt_spec *s);

/* Parses "sgd|avgm|adam|yogi|adagrad" into s->kind. Returns 0 or -EINVAL. */
int sopt_parse(const char *text, sopt_spec *s, char *err);

/* The optimizer and the settings it uses, as one line, e.g.
 * "adam lr=0.01 beta1=0.9 beta2=0.99 tau=0.001" (size >= SOPT_NAME_MAX). */
void sopt_name(const sopt_spec *s, char *buf, size_t size);

/* Doubles of state for n floats: 0 (sgd), n (avgm) or 2n (m then v). */
size_t sopt_state_len(const sopt_spec *s, size_t n);

/* Creates the optimizer for n floats with its initial state. Returns 0 and
 * *out, or -ENOMEM. */
int sopt_new(const sopt_spec *spec, size_t n, sopt **out);
void sopt_free(sopt *o);                /* accepts NULL */

/* Computes x + step(d) into x (n floats) and the pending state. Returns 0,
 * or -ERANGE when a new value would not be finite in float (x and the
 * state then unchanged). */
int sopt_step(sopt *o, const float *d, float *x);

/* The pending state (sopt_state_len doubles) after a successful sopt_step:
 * what is committed with the model. */
const double *sopt_pending(const sopt *o);

/* Makes the pending state the current one (after the commit succeeded). */
void sopt_accept(sopt *o);

/* The current state, to be replaced from a stored copy on resume
 * (sopt_state_len doubles). */
double *sopt_state(sopt *o);

#endif
