use rlhf_lab::gridworld::solve::{value_iteration, SolveOptions};
use rlhf_lab::gridworld::GridWorld;
use rlhf_lab::rl::{GridworldTrainer, PpoConfig};
fn main() {
    let map = std::env::args().nth(1).unwrap_or("dragon".into());
    let world = GridWorld::load(&map).unwrap();
    let opt = value_iteration(&world, SolveOptions::default());
    let cfg: PpoConfig =
        serde_json::from_str(&std::env::args().nth(2).unwrap_or("{}".into())).unwrap();
    let every: usize = std::env::args()
        .nth(3)
        .map(|s| s.parse().unwrap())
        .unwrap_or(30);
    let u = rlhf_lab::gridworld::solve::uniform_policy(&world);
    println!(
        "random policy ends: {:?}",
        rlhf_lab::gridworld::solve::terminal_distribution(&world, &u, 60)
            .iter()
            .enumerate()
            .filter(|(_, p)| **p > 0.0)
            .map(|(s, p)| (world.cell_of(s), (p * 1000.0).round() / 1000.0))
            .collect::<Vec<_>>()
    );
    let t0 = std::time::Instant::now();
    let mut t = GridworldTrainer::new(world.clone(), cfg).unwrap();
    while t.iteration() < t.config.num_iterations() {
        let k = 0;
        let ms = t.train_iterations(every).unwrap().to_vec();
        let m = ms.last().unwrap();
        let r = t.compare(&opt).unwrap();
        println!("it {:>4} step {:>6} ret {:>7.3} disc {:>7.3} len {:>5.1} ent {:.3} kl3 {:.4} clip {:.3} ev {:>6.3} vl {:.4} gn {:.3} | agree {:.2} greedy {:.3} opt {:.3} vrmse {:.3}",
          m.iteration, m.global_step, m.episodic_return, m.discounted_return, m.episodic_length, m.entropy, m.approx_kl_k3, m.clip_fraction, m.explained_variance, m.value_loss, m.grad_norm, r.policy_agreement, r.greedy_return, r.optimal_return, r.value_rmse_vs_optimal);
        let _ = k;
    }
    println!("wall {:.2}s", t0.elapsed().as_secs_f64());
    let probs = t.policy_probabilities().unwrap();
    let (vpi, _) =
        rlhf_lab::gridworld::solve::policy_evaluation(&world, &probs, Default::default());
    let qpi = rlhf_lab::gridworld::solve::q_from_values(&world, &vpi);
    let vnet = t.value_table().unwrap();
    for s in world.reachable_states() {
        println!(
            "{:?} pi {:?} Qpi {:?} Q* {:?} Vnet {:.3} Vpi {:.3}",
            world.cell_of(s),
            probs
                .row(s)
                .iter()
                .map(|p| (p * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            qpi.row(s)
                .iter()
                .map(|p| (p * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            opt.q
                .row(s)
                .iter()
                .map(|p| (p * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            vnet[s],
            vpi[s]
        );
    }
    println!(
        "{}",
        rlhf_lab::gridworld::render::ascii(&world, Some(&t.greedy_policy().unwrap()))
    );
    println!(
        "{}",
        rlhf_lab::gridworld::render::ascii(&world, Some(&opt.policy))
    );
}
