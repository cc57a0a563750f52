/* rdp: a Renyi-DP accountant for the sampled Gaussian mechanism, as
 * DP-FedAvg's rounds are (Mironov 2017; Mironov, Talwar, Zhang 2019,
 * "Renyi Differential Privacy of the Sampled Gaussian Mechanism").
 *
 * One round samples each client with probability q and adds Gaussian noise
 * of noise multiplier z (std z times the sensitivity). Its RDP at integer
 * order a is log(A_a) / (a - 1) with
 *   A_a = sum_{i=0..a} C(a,i) (1-q)^(a-i) q^i exp((i^2 - i) / (2 z^2)),
 * summed in log space; q = 1 gives a / (2 z^2), q = 0 gives 0. Rounds
 * compose by adding RDP order by order. Epsilon at delta is the minimum over
 * the orders of r + log1p(-1/a) - log(delta * a) / (a - 1) (Canonne, Kamath,
 * Steinke 2020, Proposition 12), or 0 where delta^2 + expm1(-r) >= 0, the
 * conversion TensorFlow Privacy's get_privacy_spent uses.
 *
 * Only the integer orders 2..RDP_MAX_ORDER are used: a bound at fewer orders
 * is still a valid (slightly looser) bound.
 */
#ifndef SEFL_RDP_H
#define SEFL_RDP_H

#define RDP_MAX_ORDER 256
#define RDP_N_ORDERS (RDP_MAX_ORDER - 1)   /* orders 2..RDP_MAX_ORDER */

typedef struct {
    double rdp[RDP_N_ORDERS];   /* rdp[i]: RDP at order i + 2 */
} rdp_acct;

/* Empty accountant: no privacy spent. */
void rdp_init(rdp_acct *a);

/* RDP at integer order (>= 2) of one sampled Gaussian step with rate q
 * (0..1) and noise multiplier z (> 0; 0 gives infinity). */
double rdp_sgm(double q, double z, int order);

/* Adds `steps` steps of rate q and noise multiplier z. */
void rdp_compose(rdp_acct *a, double q, double z, int steps);

/* Epsilon at delta (0 < delta < 1) from rdp[i] at orders i + 2 for
 * i < n; *order (may be NULL) gets the order that gave it. */
double rdp_epsilon_of(const double *rdp, int n, double delta, int *order);

/* Epsilon spent so far at delta. */
double rdp_epsilon(const rdp_acct *a, double delta, int *order);

#endif
