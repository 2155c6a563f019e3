// Every GraphQL operation of the console, checked against ../schema.graphql by graphql-codegen
// (`npm run codegen`), which also generates their TypeScript types into src/gql/.
import { graphql } from "./gql";

export const InboxItemFields = graphql(`
  fragment InboxItemFields on WorkflowItem {
    id
    title
    kind
    state
    priority
    risk
    createdAt
    version
    requester { userId displayName }
    template { key name }
    steps { id stepState dueAt }
  }
`);

export const InboxPageQuery = graphql(`
  query InboxPage($filter: InboxFilter, $sort: InboxSort, $first: Int, $after: String) {
    inbox(filter: $filter, sort: $sort, first: $first, after: $after) {
      eventCursor
      totalCount
      countsExact
      facets {
        states { value count }
        kinds { value count }
        risks { value count }
        overdue { value count }
        claim { value count }
      }
      pageInfo { hasNextPage endCursor }
      edges {
        cursor
        dueAt
        overdue
        claim
        node { ...InboxItemFields }
      }
    }
  }
`);

export const InboxChangedSubscription = graphql(`
  subscription InboxChanged($after: String) {
    inboxChanged(after: $after) {
      __typename
      ... on InboxChange {
        cursor
        seq
        kind
        reason
        actorId
        itemId
        claim
        item { ...InboxItemFields }
      }
      ... on ResyncRequired { cursor seq }
    }
  }
`);

export const ItemsPageQuery = graphql(`
  query ItemsPage($scope: ItemScope!, $filter: ItemFilter, $sort: InboxSort, $first: Int, $after: String) {
    items(scope: $scope, filter: $filter, sort: $sort, first: $first, after: $after) {
      eventCursor
      totalCount
      countsExact
      facets {
        states { value count }
        kinds { value count }
        risks { value count }
      }
      pageInfo { hasNextPage endCursor }
      edges { cursor node { ...InboxItemFields } }
    }
  }
`);

export const ItemsChangedSubscription = graphql(`
  subscription ItemsChanged($scope: ItemScope!, $after: String) {
    itemsChanged(scope: $scope, after: $after) {
      __typename
      ... on ItemListChange {
        cursor
        seq
        kind
        itemId
        item { ...InboxItemFields }
      }
      ... on ResyncRequired { cursor seq }
    }
  }
`);

export const StepFields = graphql(`
  fragment StepFields on Step {
    id
    key
    name
    stepKind
    stepState
    risk
    declaredRisk
    action
    expectedOutcome
    params
    originalParams
    paramsDiff { key before after }
    needed
    sensitive
    version
    dueAt
    claimedBy
    claimant { displayName }
    assignees { users groups roles }
    seats { holder group role delegate }
    decisions { outcome reason createdAt actor { userId displayName } }
    hold { upstreams since options }
  }
`);

export const ItemDetailQuery = graphql(`
  query ItemDetail($id: ID!) {
    item(id: $id) {
      __typename
      ... on WorkflowItem {
        ...InboxItemFields
        revision
        summary
        payload
        updatedAt
        eventCursor
        diagram
        template { version }
        steps { ...StepFields }
        auditEvents(first: 200) { nodes { seq action actorId reason occurredAt stepId } }
      }
    }
    comments(itemId: $id, first: 100) {
      edges { node { id body createdAt deleted author { userId displayName } } }
    }
    evidence(itemId: $id) {
      id name contentType size sha256 description createdAt downloadUrl uploader { displayName }
    }
  }
`);

/**
 * Any item or step by its global id, with the console's own fragments on both: the `node(id:)`
 * query with fragments on `WorkflowItem` and `Step` that graphql-codegen, relay-compiler and
 * graphql-inspector must all accept (`scripts/console check`), which they can because fields of
 * one name have one type on every `Node`. It is the contract a frontend's "open by id" relies
 * on; the console itself reads items with `item(id:)`, beside their comments and evidence.
 */
export const NodeQuery = graphql(`
  query Node($id: ID!) {
    node(id: $id) {
      __typename
      id
      ... on WorkflowItem { ...InboxItemFields eventCursor }
      ... on Step { ...StepFields item { id } }
    }
  }
`);

export const ItemEventsSubscription = graphql(`
  subscription ItemEvents($itemId: ID!, $after: String) {
    itemEvents(itemId: $itemId, after: $after) {
      __typename
      ... on ItemEvent { cursor seq action }
      ... on ResyncRequired { cursor seq }
    }
  }
`);


export const UserErrorFields = graphql(`
  fragment UserErrorFields on UserError {
    code
    message
    field
    problems { path message }
  }
`);

/** What every item mutation answers: the item's new state, or typed errors. */
export const ItemResult = graphql(`
  fragment ItemResult on ItemPayload {
    item { id state version }
    errors { ...UserErrorFields }
  }
`);

export const ApproveStep = graphql(`
  mutation ApproveStep($input: DecideStepInput!) {
    approveStep(input: $input) {
      ...ItemResult
    }
  }
`);

export const RejectStep = graphql(`
  mutation RejectStep($input: DecideStepInput!) {
    rejectStep(input: $input) {
      ...ItemResult
    }
  }
`);

export const RequestChanges = graphql(`
  mutation RequestChanges($input: DecideStepInput!) {
    requestChanges(input: $input) {
      ...ItemResult
    }
  }
`);

export const ClaimStep = graphql(`
  mutation ClaimStep($input: StepReasonInput!) {
    claimStep(input: $input) {
      ...ItemResult
    }
  }
`);

export const UnclaimStep = graphql(`
  mutation UnclaimStep($input: StepReasonInput!) {
    unclaimStep(input: $input) {
      ...ItemResult
    }
  }
`);

export const ReassignStep = graphql(`
  mutation ReassignStep($input: ReassignStepInput!) {
    reassignStep(input: $input) {
      ...ItemResult
    }
  }
`);

export const DelegateStep = graphql(`
  mutation DelegateStep($input: DelegateStepInput!) {
    delegateStep(input: $input) {
      ...ItemResult
    }
  }
`);

export const ModifyStepParams = graphql(`
  mutation ModifyStepParams($input: ModifyStepParamsInput!) {
    modifyStepParams(input: $input) {
      ...ItemResult
    }
  }
`);

export const CancelItem = graphql(`
  mutation CancelItem($input: ItemReasonInput!) {
    cancelItem(input: $input) {
      ...ItemResult
    }
  }
`);

export const OverrideStep = graphql(`
  mutation OverrideStep($input: OverrideStepInput!) {
    overrideStep(input: $input) {
      ...ItemResult
    }
  }
`);

/** Several decisions in one request, each with its own result and typed errors. */
export const DecideSteps = graphql(`
  mutation DecideSteps($input: DecideStepsInput!) {
    decideSteps(input: $input) {
      results {
        stepId
        outcome
        item { id title state version }
        errors { ...UserErrorFields }
      }
      errors { ...UserErrorFields }
    }
  }
`);

/** What happens to a step held by an `ask_user` dependency (the requester's choice). */
export const ResolveHeldStep = graphql(`
  mutation ResolveHeldStep($input: ResolveHeldStepInput!) {
    resolveHeldStep(input: $input) {
      ...ItemResult
    }
  }
`);

export const ApproveAll = graphql(`
  mutation ApproveAll($input: ItemReasonInput!) {
    approveAll(input: $input) {
      ...ItemResult
    }
  }
`);

export const ResubmitItem = graphql(`
  mutation ResubmitItem($input: ResubmitItemInput!) {
    resubmitItem(input: $input) {
      ...ItemResult
    }
  }
`);

/** Where to PUT an evidence file (the URL is the permission: no bearer token with the PUT). */
export const RequestEvidenceUpload = graphql(`
  mutation RequestEvidenceUpload($input: RequestEvidenceUploadInput!) {
    requestEvidenceUpload(input: $input) {
      upload { url method headers { name value } evidenceId }
      errors { ...UserErrorFields }
    }
  }
`);

export const AddComment = graphql(`
  mutation AddComment($input: AddCommentInput!) {
    addComment(input: $input) {
      comment { id }
      errors { ...UserErrorFields }
    }
  }
`);

/** What a decision link would decide; no bearer token (the link's token is the credential). */
export const DecisionLinkQuery = graphql(`
  query DecisionLink($token: String!) {
    decisionLink(token: $token) {
      itemId
      itemTitle
      itemState
      stepName
      stepState
      outcome
      recipientId
      recipientName
      expiresAt
      expired
      used
      usedAt
      usable
      reasonRequired
    }
  }
`);

export const ConfirmDecisionLink = graphql(`
  mutation ConfirmDecisionLink($input: ConfirmDecisionLinkInput!) {
    confirmDecisionLink(input: $input) {
      itemId
      itemState
      stepState
      errors { ...UserErrorFields }
    }
  }
`);
