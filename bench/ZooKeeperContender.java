import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher.Event.EventType;
import org.apache.zookeeper.Watcher.Event.KeeperState;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;

/**
 * One contender in ZooKeeper's standard leader-election recipe, as a Mesos-style master uses
 * it: create an EPHEMERAL_SEQUENTIAL node under /election; the lowest sequence number leads;
 * every other contender watches the node just below its own and checks again when that node
 * goes away. A contender that is killed stops pinging, the ensemble expires its session after
 * the session timeout, deletes its node, and the next contender's watch fires.
 *
 * <p>Usage: {@code java -cp CLASSES:zookeeper.jar ZooKeeperContender HOST:PORT,... SESSION_MS}
 *
 * <p>It prints one line per event on standard output, for bench/failover.py:
 *
 * <pre>
 *   SESSION ms      the session timeout the ensemble granted
 *   READY node      this contender's node under /election (e.g. n_0000000003)
 *   LEADER node     this contender leads (it then runs until killed)
 *   STATE state     the session was disconnected, reconnected or expired
 * </pre>
 */
public final class ZooKeeperContender {
    private static final String ELECTION = "/election";
    private static final String NODE_PREFIX = "n_";
    private static final long CONNECT_TIMEOUT_SECONDS = 60;
    private static final long CONNECTION_LOSS_RETRY_MS = 10;

    public static void main(String[] arguments) throws Exception {
        if (arguments.length != 2) {
            System.err.println("usage: ZooKeeperContender HOST:PORT,... SESSION_MS");
            System.exit(2);
        }
        String connectString = arguments[0];
        int sessionTimeoutMs = Integer.parseInt(arguments[1]);

        CountDownLatch connected = new CountDownLatch(1);
        AtomicBoolean connectedOnce = new AtomicBoolean(false);
        ZooKeeper zooKeeper = new ZooKeeper(connectString, sessionTimeoutMs, event -> {
            if (event.getType() != EventType.None) {
                return;
            }
            KeeperState state = event.getState();
            if (state == KeeperState.SyncConnected && connectedOnce.compareAndSet(false, true)) {
                connected.countDown();
                return;
            }
            // Anything after the first connection is worth knowing: a benchmark run whose
            // surviving contenders lost their connection does not measure a clean failover.
            say("STATE " + state);
            if (state == KeeperState.Expired) {
                System.exit(3);
            }
        });
        if (!connected.await(CONNECT_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
            System.err.println("no connection to " + connectString);
            System.exit(2);
        }
        say("SESSION " + zooKeeper.getSessionTimeout());

        try {
            zooKeeper.create(ELECTION, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                    CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException alreadyThere) {
            // Another contender created it first.
        }
        String path = zooKeeper.create(ELECTION + "/" + NODE_PREFIX, new byte[0],
                ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL_SEQUENTIAL);
        String node = path.substring(ELECTION.length() + 1);
        say("READY " + node);

        waitUntilLeader(zooKeeper, node);
        say("LEADER " + node);
        // Lead until killed.
        new CountDownLatch(1).await();
    }

    /** Returns once this contender's node is the lowest under /election. */
    private static void waitUntilLeader(ZooKeeper zooKeeper, String node) throws Exception {
        while (true) {
            try {
                List<String> nodes = zooKeeper.getChildren(ELECTION, false);
                // Same prefix and a zero-padded sequence number: text order is sequence order.
                Collections.sort(nodes);
                int index = nodes.indexOf(node);
                if (index < 0) {
                    throw new IllegalStateException("this contender's node " + node
                            + " is gone: its session expired");
                }
                if (index == 0) {
                    return;
                }
                // Watch only the predecessor, so that one deletion wakes one contender.
                CountDownLatch predecessorChanged = new CountDownLatch(1);
                String predecessor = ELECTION + "/" + nodes.get(index - 1);
                if (zooKeeper.exists(predecessor, event -> predecessorChanged.countDown()) != null) {
                    predecessorChanged.await();
                }
            } catch (KeeperException.ConnectionLossException lost) {
                // The client reconnects by itself within the session; ask again.
                Thread.sleep(CONNECTION_LOSS_RETRY_MS);
            }
        }
    }

    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }
}
